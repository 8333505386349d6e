"""Create an API key: `python scripts/create_api_key.py --tenant NAME`.

Creates the tenant if needed. The key is printed once, as the last line of
stdout; only its hash is stored.
"""

from __future__ import annotations

import argparse

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from conveyor.common.db import make_sync_engine, make_sync_sessionmaker
from conveyor.common.keys import generate_key
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.models import ApiKey, Tenant
from conveyor.common.settings import Settings, load_settings


def _tenant_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 100:
        raise argparse.ArgumentTypeError("must be 1 to 100 characters")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenant", required=True, type=_tenant_name, help="tenant name")
    args = parser.parse_args()
    settings = load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    engine = make_sync_engine(settings, pool_size=1)
    key = generate_key()
    with make_sync_sessionmaker(engine)() as session:
        # Idempotent per tenant name, and safe when two runs race.
        session.execute(insert(Tenant).values(name=args.tenant).on_conflict_do_nothing())
        tenant_id = session.execute(
            select(Tenant.id).where(Tenant.name == args.tenant)
        ).scalar_one()
        session.add(ApiKey(tenant_id=tenant_id, lookup=key.lookup, secret_hash=key.secret_hash))
        session.commit()
    engine.dispose()
    get_logger("conveyor.create_api_key").info(
        "api key created", tenant=args.tenant, key_lookup=key.lookup
    )
    print(key.plaintext, flush=True)


if __name__ == "__main__":
    main()
