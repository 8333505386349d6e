"""Conveyor's HTTP API."""
