"""A fake RouterOS router that speaks the real API wire protocol (TCP 8728).

Written from MikroTik's API documentation, independently of librouteros,
so the real client is tested against the protocol and not against itself:

- a word is a length (1 to 4 bytes: 0xxxxxxx, 10xxxxxx+1, 110xxxxx+2,
  1110xxxx+3) followed by that many bytes; a sentence is words ended by an
  empty word;
- the first word of a request is the command (``/ppp/active/print``),
  attribute words are ``=name=value``, query words ``?name=value`` (or
  ``?=name=value``), ``?name``, ``?-name``, ``?<name=v``, ``?>name=v`` and operations
  ``?#!&|``; ``=.proplist=a,b`` picks the properties returned;
- replies are ``!re`` sentences, then ``!done`` (with ``=ret=`` for add);
  an error is ``!trap =message=...`` followed by ``!done``;
- ``/login =name= =password=`` is the plain login of RouterOS 6.43+.

Menus are plain tables of rows keyed by ``.id`` (``*1``, ``*2``...):
``print``, ``add``, ``set`` and ``remove`` work on any of them.
"""

import hashlib
import socketserver
import ssl
import subprocess
import threading

import pytest

MENUS = ("/ppp/active", "/ip/hotspot/active", "/queue/simple", "/ip/firewall/address-list")


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    return (length | 0xE0000000).to_bytes(4, "big")


def encode_sentence(*words: str) -> bytes:
    data = b"".join(encode_length(len(word.encode())) + word.encode() for word in words)
    return data + b"\x00"


class _Connection(socketserver.StreamRequestHandler):
    server: "_Server"

    def _read_exact(self, count: int) -> bytes:
        data = self.rfile.read(count)
        if len(data) < count:
            raise EOFError
        return data

    def _read_word(self) -> str:
        first = self._read_exact(1)[0]
        if first < 0x80:
            length = first
        elif first < 0xC0:
            length = int.from_bytes(bytes([first]) + self._read_exact(1), "big") & 0x3FFF
        elif first < 0xE0:
            length = int.from_bytes(bytes([first]) + self._read_exact(2), "big") & 0x1FFFFF
        else:
            length = int.from_bytes(bytes([first]) + self._read_exact(3), "big") & 0xFFFFFFF
        return self._read_exact(length).decode()

    def _read_sentence(self) -> list[str]:
        words = []
        while (word := self._read_word()) != "":
            words.append(word)
        return words

    def handle(self) -> None:
        router: FakeRouter = self.server.router
        logged_in = False
        while True:
            try:
                sentence = self._read_sentence()
            except (EOFError, ConnectionError):
                return
            if not sentence:
                continue
            command, words = sentence[0], sentence[1:]
            router.commands.append(sentence)
            if command == "/login":
                attributes = _attributes(words)
                logged_in = (attributes.get("name"), attributes.get("password")) == (
                    router.user,
                    router.password,
                )
                self._reply(*([] if logged_in else [["!trap", "=message=invalid user name or password (6)"]]))
            elif not logged_in:
                self._reply(["!trap", "=message=not logged in"])
            else:
                self._reply(*router.execute(command, words))

    def _reply(self, *sentences: list[str]) -> None:
        sentences = list(sentences)
        if not sentences or sentences[-1][0] != "!done":
            sentences.append(["!done"])
        self.wfile.write(b"".join(encode_sentence(*sentence) for sentence in sentences))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    router: "FakeRouter"

    def get_request(self):
        connection, address = super().get_request()
        if self.router.tls is not None:
            connection = self.router.tls.wrap_socket(connection, server_side=True)
        return connection, address


def _attributes(words: list[str]) -> dict[str, str]:
    pairs = (word[1:].split("=", 1) for word in words if word.startswith("="))
    return {name: value for name, value in pairs}


def _matches(row: dict, queries: list[str]) -> bool:
    """Evaluate RouterOS query words on a stack; what is left is ANDed."""
    stack: list[bool] = []
    for query in queries:
        body = query[1:]
        if body.startswith("#"):
            for operation in body[1:]:
                if operation == "!":
                    stack.append(not stack.pop())
                elif operation in "&|":
                    right, left = stack.pop(), stack.pop()
                    stack.append(left and right if operation == "&" else left or right)
        elif body.startswith("-"):
            stack.append(body[1:] not in row)
        elif body[:1] in "<>=":
            name, value = body[1:].split("=", 1)
            if body[0] == "=":
                stack.append(row.get(name) == value)
            else:
                stack.append(name in row and (row[name] < value if body[0] == "<" else row[name] > value))
        elif "=" in body:
            name, value = body.split("=", 1)
            stack.append(row.get(name) == value)
        else:
            stack.append(body in row)
    return all(stack)


class FakeRouter:
    """A RouterOS box with menus of rows; ``commands`` records every sentence received."""

    def __init__(
        self, user: str = "radbill", password: str = "api-s3cret", tls: ssl.SSLContext | None = None
    ):
        self.user = user
        self.password = password
        self.tls = tls  # api-ssl: a server context with the router's certificate
        self.menus: dict[str, list[dict]] = {menu: [] for menu in MENUS}
        self.commands: list[list[str]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._server = None

    def add(self, menu: str, **properties: str) -> str:
        """Put a row in a menu, as the router would when a session comes up."""
        with self._lock:
            row_id = f"*{self._next_id:X}"
            self._next_id += 1
            self.menus[menu].append(
                {".id": row_id, **{name.replace("_", "-"): str(value) for name, value in properties.items()}}
            )
            return row_id

    def execute(self, command: str, words: list[str]) -> list[list[str]]:
        menu, _, verb = command.rpartition("/")
        if menu not in self.menus:
            return [["!trap", "=message=no such command prefix"]]
        attributes = _attributes(words)
        with self._lock:
            rows = self.menus[menu]
            if verb == "print":
                wanted = attributes.get(".proplist", "").split(",") if ".proplist" in attributes else None
                selected = [row for row in rows if _matches(row, [w for w in words if w.startswith("?")])]
                return [
                    ["!re"] + [f"={k}={v}" for k, v in row.items() if wanted is None or k in wanted]
                    for row in selected
                ]
            if verb == "add":
                self._next_id += 1
                row_id = f"*{self._next_id - 1:X}"
                rows.append({".id": row_id, **attributes})
                return [["!done", f"=ret={row_id}"]]
            targets = attributes.pop(".id", "").split(",")
            by_id = {row[".id"]: row for row in rows}
            missing = [row_id for row_id in targets if row_id not in by_id]
            if missing:
                return [["!trap", "=message=no such item"]]
            if verb == "remove":
                self.menus[menu] = [row for row in rows if row[".id"] not in targets]
                return []
            if verb == "set":
                for row_id in targets:
                    by_id[row_id].update(attributes)
                return []
        return [["!trap", "=message=no such command"]]

    def start(self) -> int:
        """Listen on 127.0.0.1 in a thread; return the port."""
        self._server = _Server(("127.0.0.1", 0), _Connection)
        self._server.router = self
        threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True).start()
        return self._server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake_router():
    """A FakeRouter (user radbill, password api-s3cret) on 127.0.0.1; its port is ``port``."""
    router = FakeRouter()
    router.port = router.start()
    yield router
    router.stop()


@pytest.fixture
def tls_router(tmp_path):
    """A FakeRouter serving api-ssl with a self-signed certificate for 127.0.0.1
    (as ``/certificate add ... subject-alt-name=IP:...`` makes one); its
    ``certificate`` file and SHA-256 ``fingerprint`` are attributes."""
    key, certificate = tmp_path / "router.key", tmp_path / "router.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-subj", "/CN=router", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1"]
        + ["-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    router = FakeRouter(tls=context)
    router.port = router.start()
    router.certificate = str(certificate)
    router.fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(certificate.read_text())).hexdigest()
    yield router
    router.stop()
