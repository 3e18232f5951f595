"""What the walk prints: sections, notes, and each step's outcome against its expectation."""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import HTTPException

__all__ = ["Walk", "show"]


def show(value: object) -> str:
    """A listing filter or a check's result, the way the walk prints it."""
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(str(v) for v in value)) + "}"
    if value is None:
        return "None (no filter: sees every one)"
    return repr(value)


class Walk:
    """Prints each step and counts the ones whose expectation did not hold."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.steps = 0

    def section(self, title: str) -> None:
        """Start a titled group of steps."""
        print(f"\n-- {title}", flush=True)

    def note(self, text: str) -> None:
        """An indented line of context (no expectation)."""
        print(f"        {text}", flush=True)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        """One step: print it, count it, remember it when `ok` is false."""
        self.steps += 1
        mark = " ok " if ok else "FAIL"
        print(f"  [{mark}] {what}" + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    async def allowed(
        self, who: str, call: str, check: Awaitable[object], expect: str | None = None
    ) -> None:
        """The call must not raise (and, given `expect`, must return it)."""
        try:
            result = await check
        except HTTPException as exc:
            self.check(f"{who:<6} {call}", False, f"denied {exc.status_code}: {exc.detail}")
            return
        extra = f" -> {result}" if isinstance(result, str) else ""
        ok = expect is None or result == expect
        self.check(
            f"{who:<6} {call}", ok, f"allowed{extra}" + ("" if ok else f", expected {expect}")
        )

    async def denied(self, who: str, call: str, check: Awaitable[object], status: int) -> None:
        """The call must raise an HTTPException with `status`."""
        try:
            result = await check
        except HTTPException as exc:
            self.check(
                f"{who:<6} {call}",
                exc.status_code == status,
                f"denied {exc.status_code}: {exc.detail}",
            )
            return
        returned = "" if result is None else f" ({show(result)})"
        self.check(f"{who:<6} {call}", False, f"ALLOWED{returned}, expected {status}")
