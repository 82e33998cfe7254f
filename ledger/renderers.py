"""The ledger export's formats as DRF renderers: `?format=csv|jsonl` (DRF's own format
override) or the Accept header chooses one. The export view streams what `stream` yields;
`render` gives the same bytes whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework.renderers import BaseRenderer

from ledger.exports import LedgerExport


class LedgerExportRenderer(BaseRenderer):
    charset = "utf-8"

    def stream(self, export: LedgerExport) -> Iterator[bytes]:
        raise NotImplementedError

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        return b"".join(self.stream(data))


class LedgerCSVRenderer(LedgerExportRenderer):
    media_type = "text/csv"
    format = "csv"

    def stream(self, export: LedgerExport) -> Iterator[bytes]:
        return export.csv()


class LedgerJSONLinesRenderer(LedgerExportRenderer):
    media_type = "application/jsonl"
    format = "jsonl"

    def stream(self, export: LedgerExport) -> Iterator[bytes]:
        return export.jsonl()
