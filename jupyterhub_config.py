"""JupyterHub for a class taking this course together on one shared machine.

Every student's JupyterLab, kernels and notebook servers run on the same machine, so they share its
loopback interface.  This configuration keeps them apart where it matters:

* Kernels talk to their JupyterLab over UNIX sockets in the student's own runtime folder
  (``--KernelManager.transport=ipc``), not over TCP ports on 127.0.0.1 that Jupyter picks by binding
  and releasing them, which a classmate's server could take in between.  A student whose home folder's
  path is too long to fit in a socket's (over 28 characters on Linux) gets TCP kernels, and the hub's log
  says so.
* Each student's ``lab.listen`` binds a loopback address of that student's own,
  127.100.0.0 plus the hub's user id (``WRITING_SERVERS_LOOPBACK``), so a classmate's
  ``nc 127.0.0.1 8000`` does not land in it.  This prevents accidents, not prying: anyone on the
  machine can still connect to any loopback address on purpose.

The hub listens on 127.0.0.1 only.  To open it to a classroom, put a reverse proxy with TLS in front
of it, or change ``bind_url`` once you have a certificate.  Run it as root, in an environment where the
course is installed (``pip install -e '.[lab]' jupyterhub`` and ``npm install -g configurable-http-proxy``):

    jupyterhub -f jupyterhub_config.py

Each student logs in with their own account on this machine (PAM), and their server runs as that
user, in their home folder.  To try the hub as one person, with no system accounts:

    jupyterhub -f jupyterhub_config.py --JupyterHub.authenticator_class=dummy \\
        --JupyterHub.spawner_class=simple
"""

import ipaddress
import os
import pwd
import sys
from typing import Any

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.spawner_class = "localprocess"
# Every account on this machine may log in (JupyterHub 5 and later let nobody in unless told);
# list the class in c.Authenticator.allowed_users instead to narrow that.
c.Authenticator.allow_all = True

#: Student n's notebook servers listen on 127.100.0.n (127.100.1.4 for n = 260, and so on).
FIRST_STUDENT_LOOPBACK = ipaddress.IPv4Address("127.100.0.0")


def student_loopback(spawner: Any) -> str:
    """The loopback address of this user's own: distinct for every user, since hub user ids are."""
    return str(FIRST_STUDENT_LOOPBACK + spawner.user.id)


c.Spawner.environment = {"WRITING_SERVERS_LOOPBACK": student_loopback}

KERNELS_OVER_IPC = "--KernelManager.transport=ipc"
#: A UNIX socket's path holds 108 bytes on Linux (104 on macOS), its final NUL included.
SOCKET_PATH_MAX = 107 if sys.platform == "linux" else 103


def kernel_socket_path(home: str) -> str:
    """The longest path of a kernel's sockets in Jupyter's default runtime folder under *home*."""
    return os.path.join(home, ".local", "share", "jupyter", "runtime", f"kernel-{'0' * 36}-ipc-5")


def tcp_kernels_where_sockets_would_not_fit(spawner: Any) -> None:
    """Drop ipc kernels for a user whose home is too deep: ZeroMQ could not bind their sockets."""
    home = getattr(spawner, "home_dir", None)  # the simple spawner's; system users have one in pwd
    if home is None:
        try:
            home = pwd.getpwnam(spawner.user.name).pw_dir
        except KeyError:
            return
    if len(os.fsencode(kernel_socket_path(home))) > SOCKET_PATH_MAX:
        spawner.args = [arg for arg in spawner.args if arg != KERNELS_OVER_IPC]
        spawner.log.warning(
            "%s: kernels over TCP on 127.0.0.1, not UNIX sockets: %s is too deep for a socket path",
            spawner.user.name,
            home,
        )


c.Spawner.pre_spawn_hook = tcp_kernels_where_sockets_would_not_fit
c.Spawner.args = [
    KERNELS_OVER_IPC,
    # A kernel nobody is connected to (its tab closed, its browser gone) is shut down after an hour idle.
    "--MappingKernelManager.cull_idle_timeout=3600",
    "--MappingKernelManager.cull_interval=300",
]
c.Spawner.default_url = "/lab"

# Starting a server takes longer on a machine the whole class is using.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# A student's JupyterLab and two kernels took about 330 MiB (PSS) in `make classroom`.  The local process spawner only
# announces these limits (MEM_LIMIT, CPU_LIMIT, which jupyter-resource-usage shows); spawners that
# enforce them include systemdspawner (spawner_class = "systemdspawner.SystemdSpawner").
c.Spawner.mem_limit = "1G"
c.Spawner.cpu_limit = 1.0
