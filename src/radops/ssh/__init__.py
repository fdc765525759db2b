"""SSH for radops: connections that behave like OpenSSH, shared between commands.

- `config`: ~/.ssh/config applied (aliases, users, keys, ProxyJump) -> `SSHTarget`.
- `hostkeys`: known-hosts files, fingerprints, the policy for unknown keys.
- `errors`: paramiko and network failures turned into radops errors, in one place.
- `connection`: one direct connection and the remote processes on it (and TCP tunnels).
- `mux`: a shared connection kept open between commands (protocol, client, server).
- `remote`: `SSHConnection`, which executors use: shared when one answers, else direct.

Importing this package loads no paramiko; the modules load it when they first connect.
"""
