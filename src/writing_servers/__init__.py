"""writing-servers: Twisted's "Writing Servers" howto as a live course.

Section modules (``writing_servers.protocols`` and friends) hold the course's
servers and import nothing but Twisted.  ``writing_servers.lab`` runs them on
a background reactor in a notebook; ``writing_servers.clients`` talks to them.
Importing this package never touches a reactor.
"""

__version__ = "0.1.0"
