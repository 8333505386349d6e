"""Conveyor's Celery worker and the reconciler's clock."""
