"""JupyterHub for a class taking this course together on one shared machine.

Every student's JupyterLab, kernels and notebook servers run on the same machine, so they share its
loopback interface.  This configuration keeps them apart where it matters:

* Kernels talk to their JupyterLab over UNIX sockets in the student's own runtime folder
  (``--KernelManager.transport=ipc``), not over TCP ports on 127.0.0.1 that Jupyter picks by binding
  and releasing them, which a classmate's server could take in between.
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
c.Spawner.args = [
    "--KernelManager.transport=ipc",
    # A kernel nobody is connected to (its tab closed, its browser gone) is shut down after an hour idle.
    "--MappingKernelManager.cull_idle_timeout=3600",
    "--MappingKernelManager.cull_interval=300",
]
c.Spawner.default_url = "/lab"

# Starting a server takes longer on a machine the whole class is using.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# A student's JupyterLab and two kernels took about 410 MiB when measured.  The local process spawner only
# announces these limits (MEM_LIMIT, CPU_LIMIT, which jupyter-resource-usage shows); spawners that
# enforce them include systemdspawner (spawner_class = "systemdspawner.SystemdSpawner").
c.Spawner.mem_limit = "1G"
c.Spawner.cpu_limit = 1.0
