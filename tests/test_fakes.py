"""The in-memory storage fakes keep the public interface of what they stand in for."""

import inspect

import pytest

from s3_sharing.platform.state import StateStore
from s3_sharing.platform.storage import Bucket, GcsArchive, S3Buckets

from .fakes import MemoryArchive, MemoryBucket, MemoryBuckets, MemoryState


def _public(cls: type, *, ignore: set[str] = frozenset()) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in ignore
    }


@pytest.mark.parametrize(
    ("real", "fake"),
    [
        (Bucket, MemoryBucket),
        (GcsArchive, MemoryArchive),
        (S3Buckets, MemoryBuckets),
        (StateStore, MemoryState),
    ],
)
def test_each_fake_has_the_methods_and_signatures_of_the_real_one(real, fake):
    real_methods = _public(real, ignore={"model_post_init"})
    assert real_methods, real
    fake_methods = _public(fake)
    for name, signature in real_methods.items():
        assert name in fake_methods, f"{fake.__name__} lacks {name}"
        assert list(fake_methods[name].parameters) == list(signature.parameters), name
