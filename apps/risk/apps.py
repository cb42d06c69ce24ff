from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        # Every stored price update re-checks the accounts holding the instrument (after the
        # transaction that stored it commits).
        from apps.marketdata.services import PRICE_LISTENERS

        if monitor_on_price_update not in PRICE_LISTENERS:
            PRICE_LISTENERS.append(monitor_on_price_update)


def monitor_on_price_update(instrument_id: int) -> None:
    from django.db import transaction

    from apps.risk.tasks import monitor_instrument

    transaction.on_commit(lambda: monitor_instrument.delay(instrument_id))
