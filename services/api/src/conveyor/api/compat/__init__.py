"""The API's uses of a library's internals, one module per library, each checked
against the versions it was verified with (conveyor.common.compat)."""
