"""A real PostgreSQL server for team-mode tests and the team bench: Debian's `postgresql`
package (installed by scripts/setup-system.sh), on a temporary data directory and a free
loopback port, stopped afterwards. PostgreSQL refuses to run as root, so when the tests run
as root the server runs as the `postgres` user (or `nobody`) over a data directory it owns."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import List, Optional

PASSWORD = "team-secret"
USER = "spendwall"


def _bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/setup-system.sh (Debian's postgresql package)")
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = tempfile.mkdtemp(prefix="swpg-")
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sock")
        self.log = os.path.join(self.root, "postgres.log")
        self.port = _free_port()
        self.run_as: Optional[str] = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                    self.run_as = name
                    break
                except KeyError:
                    continue
            if self.run_as is None:
                raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")
        os.makedirs(self.sockets)
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._as([f"{self.bin}/initdb", "-D", self.data, "-U", USER, f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"])
        self.start()

    def _as(self, argv: List[str], check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--"] + argv
        return subprocess.run(argv, check=check, capture_output=True, text=True, input=input, cwd=self.root)

    def start(self) -> None:
        """Starts the server (again) on the same port and data."""
        opts = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as([f"{self.bin}/pg_ctl", "-D", self.data, "-o", opts, "-l", self.log, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        self._as([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"], check=False)

    def sql(self, statement: str, database: str = "postgres") -> List[List[str]]:
        """Runs one statement through psql over the local socket; rows as lists of strings."""
        out = self._as([f"{self.bin}/psql", "-h", self.sockets, "-p", str(self.port), "-U", USER, "-d", database,
                        "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement])
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return f"postgres://{USER}@127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
