"""Arrow rows written as CSV straight into a PostgreSQL ``COPY … FROM STDIN (FORMAT csv, HEADER
true)``, batch by batch, so the server parses one batch while the next is checked."""

from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

_NO_HEADER = pacsv.WriteOptions(include_header=False)


class CopySink(Protocol):
    """What takes the CSV bytes: a psycopg ``Copy`` (or, in a test, any writer)."""

    def write(self, buffer: memoryview, /) -> object: ...


class CsvIntoCopy:
    def __init__(self, sink: CopySink, columns: Sequence[str]) -> None:
        self.sink = sink
        sink.write(memoryview((",".join(columns) + "\n").encode()))

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(rows, buffer, _NO_HEADER)
        self.sink.write(memoryview(buffer.getvalue()))
