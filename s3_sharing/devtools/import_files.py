"""The demo customer's files: risks and their events as its ETL would drop them, with a few bad
rows on purpose (an unknown category, an event of a risk that does not exist, a day that does not
exist) so the demo shows error files."""

import csv
import io
from datetime import date

RISKS_HEADER = ["Código", "Nombre", "Descripción", "Categoría", "Probabilidad", "Impacto"]
EVENTS_HEADER = ["Código", "Código del riesgo", "Nombre", "Fecha de ocurrencia", "Pérdida", "Moneda"]


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue().encode("utf-8")


def demo_import_files(day: date) -> dict[str, bytes]:
    """Object key → content, for the demo source's bucket."""
    stamp = day.isoformat()
    risks = [
        ["R-001", "Fraude externo", "Suplantación de clientes", "operational", "4", "5"],
        ["R-002", "Riesgo de crédito", "Impago de cartera", "credit", "3", "4"],
        ["R-003", "Liquidez", "Retiros masivos", "liquidity", "2", "5"],
        ["R-004", "Cumplimiento", "Reportes regulatorios tardíos", "compliance", "3", "3"],
        ["R-005", "Ciberataque", "Ransomware", "catastrófico", "2", "5"],  # not a category
    ]
    events = [
        ["E-101", "R-001", "Tarjeta clonada", f"{stamp}", "1250.50", "COP"],
        ["E-102", "R-001", "Transferencia no reconocida", f"{stamp}", "480000", "COP"],
        ["E-103", "R-002", "Crédito en mora 90 días", f"{stamp}", "15300000", "COP"],
        ["E-104", "R-004", "Reporte UIAF fuera de plazo", f"{stamp}", "", ""],
        ["E-105", "R-999", "Evento sin riesgo", f"{stamp}", "10", "COP"],  # unknown parent
        ["E-106", "R-003", "Retiro atípico", "2026-02-30", "99", "COP"],  # no such day
    ]
    return {
        f"riesgos/riesgos_{stamp}.csv": _csv(RISKS_HEADER, risks),
        f"eventos/eventos_{stamp}.csv": _csv(EVENTS_HEADER, events),
    }
