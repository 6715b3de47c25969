"""Lifecycle rules through the client: expired versions never resolve through an alias or
``latest`` and cannot be aliased or promoted; the stage transition table; ``archive_existing``."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from modelregistry.client import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.domain.entities import Stage
from modelregistry_server.domain.stages import ALLOWED_TRANSITIONS
from tests.api.registry_helpers import expect_error, ready_version, unchanged

PAST = datetime(2020, 1, 1, tzinfo=UTC)
STAGES = {
    "DEVELOPMENT": res.STAGE_DEVELOPMENT,
    "STAGING": res.STAGE_STAGING,
    "PRODUCTION": res.STAGE_PRODUCTION,
    "ARCHIVED": res.STAGE_ARCHIVED,
}


# -- expiry -----------------------------------------------------------------------------------


def test_set_expire_time_sets_and_clears_it(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    client.seal_version("fraud", 1)
    client.set_alias("fraud", "prod", 1)
    expired = client.set_expire_time("fraud", 1, PAST)
    assert (expired.expire_time.ToDatetime(tzinfo=UTC), expired.expired) == (PAST, True)
    with expect_error(FailedPreconditionError, "VERSION_EXPIRED"):
        client.get_version("fraud", "prod")
    with unchanged(client), expect_error(AbortedError, "ETAG_MISMATCH"):
        client.set_expire_time("fraud", 1, None, etag="stale")
    cleared = client.set_expire_time("fraud", 1, None, etag=expired.etag)
    assert (cleared.HasField("expire_time"), cleared.expired) == (False, False)
    assert client.get_version("fraud", "prod").version_number == 1
    naive = client.set_expire_time("fraud", 1, datetime(2999, 1, 1))  # naive: UTC
    assert naive.expire_time.ToDatetime(tzinfo=UTC) == datetime(2999, 1, 1, tzinfo=UTC)
    assert not naive.expired


def test_an_alias_to_an_expired_version_no_longer_resolves(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    client.upload_file("fraud", 1, io.BytesIO(b"weights"))
    v1 = client.seal_version("fraud", 1)
    client.set_alias("fraud", "prod", 1)
    client.transition_stage("fraud", 1, "PRODUCTION")
    client.set_expire_time("fraud", 1, PAST)

    with expect_error(FailedPreconditionError, "VERSION_EXPIRED") as err:
        client.get_version("fraud", "prod")
    assert err.value.metadata == {
        "version": "models/fraud/versions/1",
        "expire_time": PAST.isoformat(),
    }
    for read in (
        lambda: client.get_file("fraud", "prod"),
        lambda: client.iter_file("fraud", "prod").__next__(),
        lambda: list(client.list_files("fraud", "prod")),
        lambda: list(client.list_stage_transitions("fraud", "prod")),
    ):
        with expect_error(FailedPreconditionError, "VERSION_EXPIRED"):
            read()
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):  # nothing else is READY
        client.get_version("fraud", "latest")
    # Reading it by number still works, and the alias itself is still there.
    got = client.get_version("fraud", 1)
    assert got.expired and got.uid == v1.uid and list(got.aliases) == ["prod"]
    assert b"".join(client.iter_file("fraud", 1)) == b"weights"
    assert client.get_alias("fraud", "prod").version == "models/fraud/versions/1"

    # Clearing the expiry makes the alias resolve again.
    client.set_expire_time("fraud", 1, None)
    assert client.get_version("fraud", "prod").version_number == 1
    assert client.get_version("fraud", "latest").version_number == 1


def test_an_expired_version_cannot_be_aliased_or_promoted(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    ready_version(client, "fraud", expire_time=PAST)
    client.set_alias("fraud", "stable", 1)
    client.transition_stage("fraud", 2, "ARCHIVED")  # leaving the promoted stages is allowed
    with unchanged(client):
        for alias in ("new", "stable"):  # neither a new alias nor moving one
            with expect_error(FailedPreconditionError, "VERSION_EXPIRED", message="aliased"):
                client.set_alias("fraud", alias, 2)
        for stage in ("STAGING", "PRODUCTION"):
            with expect_error(FailedPreconditionError, "VERSION_EXPIRED", message=stage):
                client.transition_stage("fraud", 2, stage)
    assert client.transition_stage("fraud", 2, "DEVELOPMENT").stage == res.STAGE_DEVELOPMENT
    # An alias copied from an alias that now points at an expired version is refused too.
    client.set_expire_time("fraud", 1, PAST)
    with unchanged(client), expect_error(FailedPreconditionError, "VERSION_EXPIRED"):
        client.set_alias("fraud", "copy", "stable")
    assert client.get_version("fraud", 1).expired


def test_expiry_in_the_future_does_not_block(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud", expire_time=datetime.now(UTC) + timedelta(days=1))
    client.set_alias("fraud", "prod", 1)
    assert client.transition_stage("fraud", "prod", "PRODUCTION").stage == res.STAGE_PRODUCTION
    assert client.get_version("fraud", "prod").version_number == 1


# -- stage policy -----------------------------------------------------------------------------


def test_every_transition_follows_the_table(client: RegistryClient) -> None:
    """For every (from, to) pair: allowed ones succeed and are recorded; others are refused
    with STAGE_TRANSITION_NOT_ALLOWED and change nothing."""
    client.create_model("fraud")
    for source in Stage:
        for target in Stage:
            number = ready_version(client, "fraud").version_number
            path = {
                Stage.DEVELOPMENT: [],
                Stage.STAGING: ["STAGING"],
                Stage.PRODUCTION: ["PRODUCTION"],
                Stage.ARCHIVED: ["ARCHIVED"],
            }[source]
            for step in path:
                client.transition_stage("fraud", number, step)
            case = f"{source.value} -> {target.value}"
            if source is target:
                with (
                    unchanged(client),
                    expect_error(FailedPreconditionError, "STAGE_UNCHANGED", case=case),
                ):
                    client.transition_stage("fraud", number, target.value)
            elif target in ALLOWED_TRANSITIONS[source]:
                moved = client.transition_stage("fraud", number, target.value, comment=case)
                assert moved.stage == STAGES[target.value], case
                last = list(client.list_stage_transitions("fraud", number))[-1]
                assert (last.from_stage, last.to_stage, last.comment) == (
                    STAGES[source.value],
                    STAGES[target.value],
                    case,
                )
            else:
                with (
                    unchanged(client),
                    expect_error(
                        FailedPreconditionError, "STAGE_TRANSITION_NOT_ALLOWED", case=case
                    ) as err,
                ):
                    client.transition_stage("fraud", number, target.value)
                assert err.value.metadata["from_stage"] == source.value
                assert err.value.metadata["to_stage"] == target.value
    # The table as documented: production goes back only through STAGING or ARCHIVED.
    assert Stage.DEVELOPMENT not in ALLOWED_TRANSITIONS[Stage.PRODUCTION]
    assert sum(len(v) for v in ALLOWED_TRANSITIONS.values()) == 11


def test_promotion_with_archive_existing_archives_the_previous_holder(
    client: RegistryClient,
) -> None:
    client.create_model("fraud")
    for _ in range(4):
        ready_version(client, "fraud")
    client.create_model("other")
    ready_version(client, "other")
    client.transition_stage("other", 1, "PRODUCTION")
    client.transition_stage("fraud", 1, "PRODUCTION")
    client.transition_stage("fraud", 2, "PRODUCTION")  # without the flag: two in PRODUCTION
    client.transition_stage("fraud", 3, "STAGING")
    before = {n: client.get_version("fraud", n) for n in (1, 2, 3)}

    alice = RegistryClient(channel=client.channel)
    promoted = alice.transition_stage(
        "fraud", 4, "PRODUCTION", comment="v4 wins", archive_existing=True
    )
    assert promoted.stage == res.STAGE_PRODUCTION
    for n in (1, 2):
        archived = client.get_version("fraud", n)
        assert archived.stage == res.STAGE_ARCHIVED
        assert archived.etag != before[n].etag
        last = list(client.list_stage_transitions("fraud", n))[-1]
        assert (last.from_stage, last.to_stage, last.actor, last.comment) == (
            res.STAGE_PRODUCTION,
            res.STAGE_ARCHIVED,
            "anonymous",
            "v4 wins",
        )
    assert client.get_version("fraud", 3) == before[3]  # STAGING is another stage
    assert client.get_version("other", 1).stage == res.STAGE_PRODUCTION  # another model
    [record] = client.list_stage_transitions("fraud", 4)
    assert (record.to_stage, record.actor) == (res.STAGE_PRODUCTION, "anonymous")

    # Re-promoting an archived version (a rollback) archives the current holder.
    client.transition_stage("fraud", 2, "PRODUCTION", archive_existing=True)
    assert client.get_version("fraud", 4).stage == res.STAGE_ARCHIVED
    assert [
        v.version_number for v in client.list_versions("fraud", filter="stage = PRODUCTION")
    ] == [2]
    # STAGING works the same way.
    client.transition_stage("fraud", 4, "STAGING", archive_existing=True)
    assert client.get_version("fraud", 3).stage == res.STAGE_ARCHIVED


def test_archive_existing_is_only_for_promotions(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    with unchanged(client):
        for stage in ("ARCHIVED", "DEVELOPMENT"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="archive_existing"):
                client.transition_stage("fraud", 1, stage, archive_existing=True)
    # A refused promotion archives nothing either.
    client.transition_stage("fraud", 1, "PRODUCTION")
    client.create_version("fraud")  # DRAFT v2
    with unchanged(client), expect_error(FailedPreconditionError, "VERSION_NOT_READY"):
        client.transition_stage("fraud", 2, "PRODUCTION", archive_existing=True)


def test_deleted_versions_are_not_archived(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    ready_version(client, "fraud")
    client.transition_stage("fraud", 1, "PRODUCTION")
    client.delete_version("fraud", 1)
    client.transition_stage("fraud", 2, "PRODUCTION", archive_existing=True)
    assert client.get_version("fraud", 1).stage == res.STAGE_PRODUCTION


def test_concurrent_promotions_leave_one_holder(replica_clients: list[RegistryClient]) -> None:
    """Promotions with archive_existing serialise on the model, also from different replicas:
    whatever the order, exactly one version is in PRODUCTION afterwards."""
    clients = replica_clients
    client = clients[0]
    client.create_model("fraud")
    contenders = 6
    for _ in range(contenders):
        ready_version(client, "fraud")
    go = threading.Barrier(contenders, timeout=30)

    def promote(number: int) -> None:
        go.wait()
        on = clients[number % len(clients)]
        on.transition_stage("fraud", number, "PRODUCTION", archive_existing=True)

    with ThreadPoolExecutor(contenders) as pool:
        for future in [pool.submit(promote, n) for n in range(1, contenders + 1)]:
            future.result(timeout=60)
    for on in clients:
        stages = [v.stage for v in on.list_versions("fraud")]
        assert stages.count(res.STAGE_PRODUCTION) == 1
        assert stages.count(res.STAGE_ARCHIVED) == contenders - 1
