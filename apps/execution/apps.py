from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "apps.execution"
    label = "execution"
    verbose_name = "Execution"

    def ready(self) -> None:
        # Live bars reach the paper matcher and the strategies through market data's listener
        # list, so market data does not import this app.
        from apps.execution.pipeline import on_bar_ingested
        from apps.marketdata.services import BAR_LISTENERS

        if on_bar_ingested not in BAR_LISTENERS:
            BAR_LISTENERS.append(on_bar_ingested)
