"""A Streamlit session without a browser: what a browser tab sends and receives, over the app's
own websocket (`/_stcore/stream`) and upload route, in Streamlit's protobuf messages.

Used by `bench/load.py` to put many people on the server without a browser each on the same
machine (Chromium's drawing would take most of the CPU the server needs), and by tests.

    async with SessionClient(server.url, "song_mood") as session:
        await session.open()                       # the page's first run
        run = await session.upload("a.mp3", data, "audio/mpeg")
        run.errors, run.elements, run.seconds_to(lambda element: ...)
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.Common_pb2 import UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

XSRF_COOKIE = "_streamlit_xsrf"


class ProtocolError(RuntimeError):
    """The server answered something a browser tab would not expect."""


@dataclass
class Run:
    """One script run as the client saw it: its elements with their arrival times."""
    started: float                                   # time.perf_counter() when the run was asked for
    elements: list[tuple[float, Element]] = field(default_factory=list)
    finished_at: float | None = None                 # time.perf_counter() at script_finished
    status: str = ""                                 # script_finished's value, e.g. FINISHED_SUCCESSFULLY

    @property
    def finished_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started

    @property
    def errors(self) -> list[str]:
        """Exception boxes and error alerts, as a person would read them."""
        found = []
        for _, element in self.elements:
            kind = element.WhichOneof("type")
            if kind == "exception":
                found.append(f"{element.exception.type}: {element.exception.message}")
            elif kind == "alert" and element.alert.format == Alert.ERROR:
                found.append(element.alert.body)
        return found

    def seconds_to(self, predicate) -> float | None:
        """Seconds from `started` to the first element for which predicate(element) holds."""
        return next((t - self.started for t, element in self.elements if predicate(element)), None)

    def find(self, predicate) -> Element | None:
        return next((element for _, element in self.elements if predicate(element)), None)


class SessionClient:
    """One person's tab on one page of the app (page_name as in the URL, e.g. "song_mood")."""

    def __init__(self, base_url: str, page_name: str, timeout_s: float = 300):
        self.base_url, self.page_name, self.timeout_s = base_url.rstrip("/"), page_name, timeout_s
        self.ws = None
        self.xsrf = ""
        self.session_id = ""
        self.page_script_hash = ""
        self.uploader_id = ""
        self.multiple_files = False
        self.uploaded: list = []  # UploadedFileInfo of the files now in the uploader

    # ------------------------------------------------------------ HTTP, as the browser does it

    def _http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers={
            "Cookie": f"{XSRF_COOKIE}={self.xsrf}", "X-Xsrftoken": self.xsrf, "Origin": self.base_url,
            **(headers or {})})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
            return reply.status, reply.headers, reply.read()

    def _fetch_xsrf_cookie(self) -> str:
        """The health route sets the XSRF cookie, as the app's first HTTP requests do."""
        with urllib.request.urlopen(f"{self.base_url}/_stcore/health", timeout=self.timeout_s) as reply:
            cookies = SimpleCookie()
            for header in reply.headers.get_all("Set-Cookie") or []:
                cookies.load(header)
        if XSRF_COOKIE not in cookies:
            raise ProtocolError("the server set no XSRF cookie")
        return cookies[XSRF_COOKIE].value

    async def fetch(self, path: str) -> bytes:
        """GET a media URL the page refers to (an image), as the browser would to draw it."""
        status, _, body = await asyncio.to_thread(self._http, "GET", path)
        return body

    # ------------------------------------------------------------ the websocket

    async def __aenter__(self) -> "SessionClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def _send(self, message: BackMsg) -> None:
        await self.ws.send(message.SerializeToString())

    async def _receive(self) -> ForwardMsg:
        message = ForwardMsg()
        message.ParseFromString(await asyncio.wait_for(self.ws.recv(), self.timeout_s))
        kind = message.WhichOneof("type")
        if kind == "new_session":
            self.session_id = message.new_session.initialize.session_id
        elif kind == "navigation" and message.navigation.page_script_hash:  # the page now shown
            self.page_script_hash = message.navigation.page_script_hash
        elif kind == "ref_hash":  # only sent for messages the client says it has cached; we say none
            raise ProtocolError("the server sent a cached-message reference")
        return message

    async def _rerun(self, widgets: list[WidgetState]) -> Run:
        message = BackMsg()
        rerun = message.rerun_script
        rerun.widget_states.widgets.extend(widgets)
        if self.page_script_hash:
            rerun.page_script_hash = self.page_script_hash
        else:
            rerun.page_name = self.page_name
        rerun.context_info.timezone, rerun.context_info.locale = "UTC", "en-US"
        rerun.context_info.url = f"{self.base_url}/{self.page_name}"
        run = Run(time.perf_counter())
        await self._send(message)
        while True:
            forward = await self._receive()
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                run.elements.append((time.perf_counter(), forward.delta.new_element))
            elif kind == "script_finished":
                run.finished_at = time.perf_counter()
                run.status = ForwardMsg.ScriptFinishedStatus.Name(forward.script_finished)
                if forward.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    return run
            elif kind == "page_not_found":
                raise ProtocolError(f"page not found: {self.page_name}")

    async def open(self) -> Run:
        """Connect and run the page once, as opening its URL does; finds the page's file uploader."""
        self.xsrf = await asyncio.to_thread(self._fetch_xsrf_cookie)
        ws_url = "ws" + self.base_url[len("http"):] + "/_stcore/stream"
        self.ws = await connect(ws_url, subprotocols=["streamlit", self.xsrf], origin=self.base_url,
                                additional_headers={"Cookie": f"{XSRF_COOKIE}={self.xsrf}"},
                                max_size=None, open_timeout=self.timeout_s)
        run = await self._rerun([])
        uploader = run.find(lambda e: e.WhichOneof("type") == "file_uploader")
        self.uploader_id = uploader.file_uploader.id if uploader else ""
        self.multiple_files = bool(uploader and uploader.file_uploader.multiple_files)
        return run

    async def upload(self, name: str, data: bytes, mime: str, *, replace: bool = True) -> Run:
        """Choose a file in the page's uploader: ask for an upload URL, PUT the file, rerun with the
        uploader's new state. replace: remove the files uploaded before (as clicking their delete
        buttons does); else add this one to them where the uploader takes several files (a
        single-file uploader always replaces, as in the browser). Run.started is the moment the
        file is chosen."""
        if not self.uploader_id:
            raise ProtocolError(f"{self.page_name} has no file uploader")
        started = time.perf_counter()
        request = BackMsg()
        request.file_urls_request.request_id = str(uuid.uuid4())
        request.file_urls_request.file_names.append(name)
        request.file_urls_request.session_id = self.session_id
        await self._send(request)
        while (reply := await self._receive()).WhichOneof("type") != "file_urls_response":
            pass
        urls = reply.file_urls_response.file_urls[0]
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        await asyncio.to_thread(self._http, "PUT", urls.upload_url, body,
                                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if replace or not self.multiple_files:
            for old in self.uploaded:
                await asyncio.to_thread(self._http, "DELETE", old.file_urls.delete_url)
            self.uploaded = []
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id)
        info.file_urls.CopyFrom(urls)
        self.uploaded.append(info)
        state = WidgetState(id=self.uploader_id)
        state.file_uploader_state_value.uploaded_file_info.extend(self.uploaded)
        run = await self._rerun([state])
        run.started = started
        return run
