"""Notebook 6's checks reject the mistakes students make, and the first ✗ line names each one.

Every wrong attempt is written as a student would write it and run by the
real check, over loopback where the check serves it; the reference solutions pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from support import first_wrong
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol

from writing_servers.exercises.simpler_protocol_creation import (
    check_blocklist,
    check_greeting_factory,
    check_rotating_quotes,
)
from writing_servers.helper_protocols import TextLineReceiver
from writing_servers.simpler_protocol_creation import DEFAULT_QUOTE, ConfigurableQOTD, ConfigurableQOTDFactory
from writing_servers.solutions import simpler_protocol_creation as solved

# -- Exercise 1: rotate the quotes ---------------------------------------------------------------


class SendsNextQuote(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.next_quote().encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class PlaceOnTheClass(Factory[SendsNextQuote]):
    """Keeps the place on the class: every factory shares it."""

    protocol = SendsNextQuote
    served = 0

    def __init__(self, quotes: list[str]) -> None:
        self.quotes = quotes

    def next_quote(self) -> str:
        quote = self.quotes[PlaceOnTheClass.served % len(self.quotes)]
        PlaceOnTheClass.served += 1
        return quote


class FixedLength(PlaceOnTheClass):
    """Starts again after three quotes, however many there are."""

    def __init__(self, quotes: list[str]) -> None:
        super().__init__(quotes)
        self.served = 0

    def next_quote(self) -> str:
        quote = self.quotes[self.served % 3]
        self.served += 1
        return quote


class OffByOne(FixedLength):
    """Moves on before it picks: the first client gets the second quote."""

    def next_quote(self) -> str:
        self.served += 1
        return self.quotes[self.served % len(self.quotes)]


class PlaceOnTheProtocol(Protocol):
    """Keeps its own place: a new protocol for each connection starts at 0 every time."""

    served = 0

    def connectionMade(self) -> None:
        quote = self.factory.quotes[self.served % len(self.factory.quotes)]
        self.served += 1
        self.transport.write(quote.encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class ProtocolKeepsPlace(FixedLength):
    """A correct next_quote, which the protocol never calls."""

    protocol = PlaceOnTheProtocol

    def next_quote(self) -> str:
        quote = self.quotes[self.served % len(self.quotes)]
        self.served += 1
        return quote


class NeverCloses(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.next_quote().encode("utf-8") + b"\r\n")


class StaysOpen(ProtocolKeepsPlace):
    protocol = NeverCloses


class SendsText(Protocol):
    """Writes the quote as text, not bytes."""

    def connectionMade(self) -> None:
        self.transport.write(self.factory.next_quote() + "\r\n")
        self.transport.loseConnection()


class WritesText(ProtocolKeepsPlace):
    protocol = SendsText


def test_text_written_to_the_transport_is_named() -> None:
    """A str written to the transport is reported as the student's line, with what to write instead."""
    report = check_rotating_quotes(WritesText)
    assert first_wrong(report).startswith("SendsText.connectionMade, line ")
    assert first_wrong(report).endswith('TypeError: Data must be bytes — write b"..." or text.encode()')


def test_place_on_the_class_is_rejected() -> None:
    """A place kept on the class is shared by every factory, and the check says so."""
    PlaceOnTheClass.served = 0
    report = check_rotating_quotes(PlaceOnTheClass)
    assert first_wrong(report) == (
        "a second factory's first next_quote() returned 'Less is more.', not 'Carpe diem.': the place is "
        "shared between factories; keep it on self, set in __init__, not on the class or in a global"
    )


def test_fixed_number_of_quotes_is_rejected() -> None:
    """'% 3' where the list's length belongs fails with two quotes."""
    report = check_rotating_quotes(FixedLength)
    assert first_wrong(report).startswith("FixedLength.next_quote, line ")
    assert first_wrong(report).endswith(
        "IndexError: list index out of range (call 3, with 2 quotes): start again after the last, "
        "with % len(self.quotes)"
    )


def test_off_by_one_is_rejected() -> None:
    """Moving on before picking gives the first client the second quote."""
    report = check_rotating_quotes(OffByOne)
    assert first_wrong(report) == (
        "with 3 quotes, 4 calls of next_quote() returned ['Übung macht den Meister.', 'Less is more.', "
        "'Carpe diem.', 'Übung macht den Meister.']: the first call must return the first quote"
    )


def test_place_on_the_protocol_is_rejected() -> None:
    """A place kept on the protocol starts over with each connection."""
    report = check_rotating_quotes(ProtocolKeepsPlace)
    assert first_wrong(report) == (
        "client 2 expected b'\\xc3\\x9cbung macht den Meister.\\r\\n' and a close; received "
        "b'Carpe diem.\\r\\n' (eof): it got the first quote again: each connection has a new protocol, so "
        "the place must be kept on the factory (self.factory.next_quote())"
    )


def test_connection_left_open_is_rejected() -> None:
    """A protocol that never closes is told to call loseConnection."""
    report = check_rotating_quotes(StaysOpen)
    assert first_wrong(report) == (
        "client 1 expected b'Carpe diem.\\r\\n' and a close; received b'Carpe diem.\\r\\n' "
        "(still open after 1 s): close it with self.transport.loseConnection()"
    )


def test_rotating_solution_passes() -> None:
    """The reference RotatingQOTDFactory passes every line."""
    report = check_rotating_quotes(solved.RotatingQOTDFactory)
    assert report.passed, repr(report)


# -- Exercise 2: a greeter configured with forProtocol --------------------------------------------


class Greeter(TextLineReceiver):
    def text_received(self, text: str) -> None:
        self.send_text(f"{self.factory.greeting}, {text}!")


class GreetingFactory(Factory[Greeter]):
    def __init__(self, greeting: str = "Hello") -> None:
        self.greeting = greeting


class GreetingOnTheClass(Factory[Greeter]):
    """Keeps the greeting on the class: the factory made last wins."""

    def __init__(self, greeting: str = "Hello") -> None:
        GreetingOnTheClass.greeting = greeting


class NamesItsProtocol(GreetingFactory):
    protocol = Greeter


class BonjourGreeter(TextLineReceiver):
    """Hard-codes the greeting it was shown."""

    def text_received(self, text: str) -> None:
        self.send_text(f"Bonjour, {text}!")


def by_hand(greeting: str) -> Factory[Greeter]:
    """The same factory, built by hand: not the way the exercise asks."""
    factory = GreetingFactory(greeting)
    factory.protocol = Greeter
    return factory


def on_plain_factory(greeting: str) -> Factory[Greeter]:
    """forProtocol called on Factory: the greeting goes to Factory(), which takes none."""
    return Factory.forProtocol(Greeter, greeting)  # type: ignore[call-arg]


def plain_factory_set_afterwards(greeting: str) -> Factory[Greeter]:
    """A plain Factory with the greeting set on it afterwards."""
    factory = Factory.forProtocol(Greeter)
    factory.greeting = greeting  # type: ignore[attr-defined]
    return factory


def greeting_set_afterwards(greeting: str) -> Factory[Greeter]:
    """forProtocol without the greeting, which is set on the factory afterwards."""
    factory = GreetingFactory.forProtocol(Greeter)
    factory.greeting = greeting
    return factory


def on_the_class(greeting: str) -> Factory[Greeter]:
    return GreetingOnTheClass.forProtocol(Greeter, greeting)


def names_its_protocol(greeting: str) -> Factory[Greeter]:
    return NamesItsProtocol.forProtocol(Greeter, greeting)


def hard_coded(greeting: str) -> Factory[BonjourGreeter]:
    return GreetingFactory.forProtocol(BonjourGreeter, greeting)  # type: ignore[return-value]


def test_factory_built_by_hand_is_rejected() -> None:
    """Setting protocol by hand instead of calling forProtocol is named."""
    report = check_greeting_factory(by_hand)
    assert first_wrong(report) == (
        "greeting_factory('Bonjour') did not call forProtocol: build the factory with "
        "GreetingFactory.forProtocol(Greeter, greeting), which makes it and sets its protocol in one call"
    )


def test_for_protocol_on_plain_factory_is_rejected() -> None:
    """Factory.forProtocol(Greeter, greeting) fails in Factory(); the line says why."""
    report = check_greeting_factory(on_plain_factory)
    assert first_wrong(report) == (
        "greeting_factory('Bonjour'): Factory.forProtocol(Greeter, greeting) passes the greeting to "
        "Factory(), which takes no arguments: call forProtocol on GreetingFactory"
    )


def test_plain_factory_with_greeting_set_afterwards_is_rejected() -> None:
    """A plain Factory with a greeting attribute works, but is not the factory asked for."""
    report = check_greeting_factory(plain_factory_set_afterwards)
    assert first_wrong(report) == (
        "greeting_factory('Bonjour') called forProtocol on Factory, which makes a plain Factory: "
        "call it on GreetingFactory, which keeps the greeting"
    )


def test_greeting_not_passed_to_for_protocol_is_rejected() -> None:
    """forProtocol without the greeting is named."""
    report = check_greeting_factory(greeting_set_afterwards)
    assert first_wrong(report) == (
        "greeting_factory('Bonjour') called GreetingFactory.forProtocol without the greeting: pass it on, "
        "GreetingFactory.forProtocol(Greeter, greeting), and forProtocol hands it to GreetingFactory()"
    )


def test_greeting_on_the_class_is_rejected() -> None:
    """A greeting kept on the class makes the first server greet with the second's greeting."""
    report = check_greeting_factory(on_the_class)
    assert first_wrong(report) == (
        "the 'Bonjour' server should answer 'Ada' with 'Bonjour, Ada!'; got 'Grüß Gott, Ada!': "
        "that is the greeting of a factory made after it: keep it on self, not on the class"
    )


def test_factory_naming_its_protocol_is_rejected() -> None:
    """A GreetingFactory that names its protocol is not the factory the exercise asks for."""
    report = check_greeting_factory(names_its_protocol)
    assert first_wrong(report) == (
        "NamesItsProtocol names a protocol itself (protocol = ...): the exercise asks it to name none, "
        "so that forProtocol chooses the protocol"
    )


def test_hard_coded_greeting_is_rejected() -> None:
    """A greeting written into the protocol fails on the second server."""
    report = check_greeting_factory(hard_coded)
    assert first_wrong(report) == (
        "the 'Grüß Gott' server should answer 'Grace' with 'Grüß Gott, Grace!'; got 'Bonjour, Grace!': "
        "that is the first factory's greeting: read it from self.factory.greeting, don't write it in"
    )


def test_greeting_solution_passes() -> None:
    """The reference greeting_factory passes every line, and leaves Factory.forProtocol as it was."""
    original = vars(Factory)["forProtocol"]
    report = check_greeting_factory(solved.greeting_factory)
    assert report.passed, repr(report)
    assert vars(Factory)["forProtocol"] is original


# -- Exercise 3: refuse blocked hosts ------------------------------------------------------------


class Blocklist(ConfigurableQOTDFactory):
    def __init__(self, blocked: Iterable[str], quote: str = DEFAULT_QUOTE) -> None:
        super().__init__(quote)
        self.blocked = set(blocked)


class ComparesTheAddress(Blocklist):
    """Looks the whole address object up in the set of host strings."""

    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        if addr in self.blocked:
            return None
        return super().buildProtocol(addr)


class HardCodedHost(Blocklist):
    """Blocks the one host it saw in the check's output."""

    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        if addr.host == "203.0.113.7":  # type: ignore[attr-defined]
            return None
        return super().buildProtocol(addr)


class ForgetsReturn(Blocklist):
    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        if addr.host in self.blocked:  # type: ignore[attr-defined]
            return None
        super().buildProtocol(addr)
        return None


class BuildsItself(Blocklist):
    """Makes the protocol itself, so its .factory is never set."""

    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        if addr.host in self.blocked:  # type: ignore[attr-defined]
            return None
        return ConfigurableQOTD()


class OnlyIPClients(Blocklist):
    """Assumes every address has a host: a UNIX-socket client breaks it."""

    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        if addr.host in self.blocked:  # type: ignore[attr-defined]
            return None
        return super().buildProtocol(addr)


def test_whole_address_compared_is_rejected() -> None:
    """An address object is never in a set of host strings; the line says to compare addr.host."""
    report = check_blocklist(ComparesTheAddress)
    assert first_wrong(report) == (
        "buildProtocol should return None for the blocked host 203.0.113.7, returned a ConfigurableQOTD: "
        "compare addr.host, the address's host string, with self.blocked"
    )


def test_hard_coded_host_is_rejected() -> None:
    """A host written into the code fails for the second blocked host."""
    report = check_blocklist(HardCodedHost)
    assert first_wrong(report) == (
        "buildProtocol should return None for the blocked host 192.0.2.44, returned a ConfigurableQOTD: "
        "compare addr.host, the address's host string, with self.blocked"
    )


def test_missing_return_is_rejected() -> None:
    """super().buildProtocol without return refuses everyone; the line asks about the return."""
    report = check_blocklist(ForgetsReturn)
    assert first_wrong(report) == (
        "buildProtocol returned None for 198.51.100.20, which is not blocked: "
        "return super().buildProtocol(addr) (is the return missing?)"
    )


def test_protocol_without_factory_is_rejected() -> None:
    """A protocol built by hand has no .factory, and the line says where its quote went."""
    report = check_blocklist(BuildsItself)
    assert first_wrong(report) == (
        "for 198.51.100.20 it returned a protocol whose .factory is None, not the factory (the protocol will "
        "not find its quote): return super().buildProtocol(addr)"
    )


def test_unix_client_without_host_is_rejected() -> None:
    """addr.host on a UNIX address raises; the line names the student's line and getattr."""
    report = check_blocklist(OnlyIPClients)
    assert first_wrong(report).startswith("for a UNIX-socket client: OnlyIPClients.buildProtocol, line ")
    assert first_wrong(report).endswith(
        "AttributeError: 'UNIXAddress' object has no attribute 'host': "
        "an address without a host is never blocked: getattr(addr, 'host', None)"
    )


def test_blocklist_solution_passes() -> None:
    """The reference BlocklistQOTDFactory passes every line."""
    report = check_blocklist(solved.BlocklistQOTDFactory)
    assert report.passed, repr(report)
