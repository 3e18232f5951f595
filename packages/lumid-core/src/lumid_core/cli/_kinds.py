"""Which resource kinds a grant may name: those an installed host plugin checks grants on."""

from __future__ import annotations

import sys

from lumid_core.hosts import installed_hosts

from ._errors import CliError

__all__ = ["check_kind"]


def check_kind(kind: str) -> None:
    """Refuse a kind no installed host plugin checks grants on (a typo grants nothing).

    Without any host plugin installed there is nothing to check against.

    Raises:
        CliError: naming the kind to grant instead (a kind checked against its
            owner's grant) or the kinds the plugins know.
    """
    from lumid_core.doctor import load_host_doctor  # imports the plugins: only here

    grantable: dict[str, list[str]] = {}
    owned: dict[str, tuple[str, str]] = {}
    for host in sorted(installed_hosts()):
        try:
            policy = load_host_doctor(host).policy
        except Exception as exc:  # a broken plugin: `lumid doctor` says more
            print(f"lumid: note: the {host} plugin did not load ({exc})", file=sys.stderr)
            continue
        for k in policy.kinds:
            if k in policy.owner_kinds:
                owned.setdefault(k, (host, policy.owner_kinds[k]))
            else:
                grantable.setdefault(k, []).append(host)
    if not grantable or kind in grantable:
        return
    if kind in owned:
        host, owner = owned[kind]
        raise CliError(
            f"{host} checks a {kind} against the {owner} grant of the same id: "
            f"grant --kind {owner} instead"
        )
    raise CliError(
        f"no installed plugin checks grants of kind {kind!r} "
        f"(known: {', '.join(sorted(grantable))}); pass --any-kind to grant it anyway"
    )
