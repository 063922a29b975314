"""Driving a regulator the way the login path will: check, evaluate (here: fail), record."""

from __future__ import annotations

from collections.abc import Callable

from sekisho.ratelimit import Decision, Regulator

SECRET = b"k" * 32


class FakeClock:
    """Callable like ``time.time`` and, as ``.time()``, a stand-in for the ``time`` module."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeRegulator = Callable[..., Regulator]


def ip_of(n: int) -> str:
    """A distinct address in a distinct /24 for each n."""
    return f"10.{n // 256 % 256}.{n % 256}.1"


async def fail(
    regulator: Regulator, clock: FakeClock, account: str, *, ip: str = "192.0.2.1",
    factor: str = "password", device: str | None = None,
) -> Decision:
    """One evaluated failure, the wait honoured first if the regulator asks for one."""
    decision = await regulator.check(account=account, client_ip=ip, factor=factor, device=device)
    if not decision.allowed and decision.reason == "delay":
        clock.advance(decision.retry_after)
        decision = await regulator.check(
            account=account, client_ip=ip, factor=factor, device=device)
    assert decision.allowed, decision
    return await regulator.record_attempt(
        account=account, client_ip=ip, factor=factor, success=False, device=device)


async def failures(regulator: Regulator, account: str, factor: str = "password") -> int:
    return (await regulator.state(account=account)).factors[factor].failures
