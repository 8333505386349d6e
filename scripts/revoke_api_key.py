"""Revoke an API key: `python scripts/revoke_api_key.py KEY_OR_LOOKUP`.

Takes the whole key or just its lookup id (the part after `cvk_`). Revoking
twice is fine; an unknown key exits 1.
"""

from __future__ import annotations

import argparse

from sqlalchemy import func, update

from conveyor.common.db import make_sync_engine
from conveyor.common.keys import split_key
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.models import ApiKey
from conveyor.common.settings import Settings, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("key", help="the API key, or its lookup id")
    args = parser.parse_args()
    parts = split_key(args.key)
    lookup = parts[0] if parts else args.key
    settings = load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("conveyor.revoke_api_key")
    engine = make_sync_engine(settings, pool_size=1)
    with engine.begin() as conn:
        found = conn.execute(
            update(ApiKey)
            .where(ApiKey.lookup == lookup)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey.id)
        ).first()
    engine.dispose()
    if found is None:
        log.error("no such api key", key_lookup=lookup)
        raise SystemExit(1)
    log.info("api key revoked", key_lookup=lookup)


if __name__ == "__main__":
    main()
