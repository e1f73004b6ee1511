"""Solutions to notebook 6's exercises."""

from collections.abc import Iterable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol

from writing_servers.helper_protocols import TextLineReceiver
from writing_servers.simpler_protocol_creation import DEFAULT_QUOTE, ConfigurableQOTD, ConfigurableQOTDFactory

# -- Exercise 1 -------------------------------------------------------------------


class RotatingQOTD(Protocol):
    """Send the factory's next quote, then close."""

    factory: "RotatingQOTDFactory"

    def connectionMade(self) -> None:
        self.transport.write(self.factory.next_quote().encode("utf-8") + b"\r\n")
        self.transport.loseConnection()


class RotatingQOTDFactory(Factory[RotatingQOTD]):
    """Hand out the quotes in turn, one per connection, starting again after the last.

    The position lives on the factory: it is the one object every connection
    shares.  Each factory has its own, so two servers rotate independently.
    """

    protocol = RotatingQOTD

    def __init__(self, quotes: list[str]) -> None:
        self.quotes = quotes
        self.served = 0

    def next_quote(self) -> str:
        quote = self.quotes[self.served % len(self.quotes)]
        self.served += 1
        return quote


# -- Exercise 2 -------------------------------------------------------------------


class Greeter(TextLineReceiver):
    """Answer each name with the factory's greeting: ``Ada`` -> ``Bonjour, Ada!``."""

    factory: "GreetingFactory"

    def text_received(self, text: str) -> None:
        self.send_text(f"{self.factory.greeting}, {text}!")


class GreetingFactory(Factory[Greeter]):
    """Holds only the configuration; forProtocol says which protocol it builds."""

    def __init__(self, greeting: str = "Hello") -> None:
        self.greeting = greeting


def greeting_factory(greeting: str) -> Factory[Greeter]:
    """A factory whose Greeters greet with *greeting*: forProtocol passes it to GreetingFactory()."""
    return GreetingFactory.forProtocol(Greeter, greeting)


# -- Exercise 3 -------------------------------------------------------------------


class BlocklistQOTDFactory(ConfigurableQOTDFactory):
    """Serve the quote to everyone except the hosts in *blocked*."""

    def __init__(self, blocked: Iterable[str], quote: str = DEFAULT_QUOTE) -> None:
        super().__init__(quote)
        self.blocked = set(blocked)

    def buildProtocol(self, addr: IAddress) -> ConfigurableQOTD | None:
        # A UNIX socket's peer has no host; only IP addresses can be blocked.
        if getattr(addr, "host", None) in self.blocked:
            return None
        return super().buildProtocol(addr)


#: The solutions to each exercise, in the notebook's order (``solution(n)`` shows them).
EXERCISES = {
    1: (RotatingQOTD, RotatingQOTDFactory),
    2: (Greeter, GreetingFactory, greeting_factory),
    3: (BlocklistQOTDFactory,),
}

WHY = {
    1: "Every connection gets a new protocol, but all share one factory, so the place in the list lives "
    "there, set on self in __init__: each factory keeps its own, and % len(self.quotes) starts again.",
    2: "forProtocol calls the class it is called on with the other arguments, GreetingFactory(greeting), "
    "then sets protocol on that instance; buildProtocol gives each Greeter the factory, and so the greeting.",
    3: "buildProtocol runs before any protocol exists, so returning None refuses the connection; for "
    "everyone else super().buildProtocol(addr) builds the protocol and sets its .factory, where its quote is.",
}
