"""Fixtures of the outbound tests."""

from collections.abc import Iterator

import pytest

from ..gpg import Gpg


@pytest.fixture
def gpg_for(keys) -> Iterator:
    """``gpg_for(business_id)``: an independent gpg holding the business's secret key and the
    platform's signing key, to open delivered files as the partner would."""
    opened: list[Gpg] = []

    def make(business_id: str) -> Gpg:
        gpg = Gpg(keys[business_id].secret, keys["platform-signing"].public)
        opened.append(gpg)
        return gpg

    yield make
    for gpg in opened:
        gpg.close()
