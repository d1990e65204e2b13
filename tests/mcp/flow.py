"""Drives `dual mcp` with the official MCP Python SDK (mcp 2.x), the way an
agent would: create a workspace, launch it, reach its dev server through
dual's proxy, run a command in it, read its logs, see destroy refuse an
unpushed commit, destroy it.

    flow.py --dual PATH --repo NAME --branch BRANCH --expect-body TEXT

`dual mcp` starts with this process's whole environment (the caller's
sandbox: HOME, DUAL_HOME, DUAL_ENGINE...). One line per step on stdout; the
first failure is one `FAIL` line on stderr and exit status 1.

Two protocol eras: the flow runs over the handshake era (ClientSession +
initialize(), 2025-11-25); then the SDK's high-level Client connects in its
default mode="auto" (server/discover, falling back to initialize): where that
lands on the modern era (2026-07-28) the whole flow runs again over it, on
the same branch; where it falls back, only the tools are listed, and a
connection pinned to the modern era is tried and only reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, ClientSession, MCPDeprecationWarning, MCPError, StdioServerParameters, stdio_client
from mcp.client.subscriptions import ResourceUpdated, Subscription

# Each tool's arguments, as the contract names them, and which are required.
TOOLS: dict[str, tuple[set[str], set[str]]] = {
    "list_workspaces": (set(), set()),
    "create_workspace": ({"branch"}, {"branch", "repo", "from"}),
    "launch": ({"workspace"}, {"workspace", "recreate", "wait_ready", "timeout_seconds"}),
    "stop": ({"workspace"}, {"workspace"}),
    "destroy": ({"workspace"}, {"workspace", "force"}),
    "run": (
        {"workspace", "argv"},
        {"workspace", "argv", "cwd", "env", "timeout_seconds", "max_output_bytes"},
    ),
    "logs": ({"workspace"}, {"workspace", "service", "tail", "since"}),
    "restart_service": ({"workspace"}, {"workspace", "service"}),
    "urls": (set(), {"workspace"}),
    "focus": (set(), {"workspace", "clear"}),
    "http_request": (
        {"workspace"},
        {
            "workspace",
            "path",
            "method",
            "port",
            "headers",
            "body",
            "max_body_bytes",
            "timeout_seconds",
        },
    ),
}

# Longest a single request may take: launch builds nothing (the test image
# exists) but may wait for the service to answer.
LAUNCH_SECONDS = 240
CALL_SECONDS = 60
# The server looks for changes once a second: a log's update is due within a
# few, whichever era tells of it.
NOTIFY_SECONDS = 10
MODERN_VERSION = "2026-07-28"


class Failure(Exception):
    """The flow's verdict: what went wrong, for the FAIL line."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


# Where the server strays from the contract without breaking the flow: said
# at the end, not fatal (an agent would get by), so that CI stays green while
# the report names them.


# The step under way, for the FAIL line of an error no check() foresaw, and
# the era its connection speaks, which every line names.
current_step = "start"
current_era = "-"


@dataclass
class Step:
    """Prints `ok <name> (<seconds>): <detail>` once the step is done."""

    name: str
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        global current_step
        self.name = f"[{current_era}] {self.name}"
        current_step = self.name

    def done(self, detail: str = "") -> None:
        took = time.monotonic() - self.started
        print(f"ok   {self.name} ({took:.2f}s){': ' + detail if detail else ''}", flush=True)


def structured(name: str, result: types.CallToolResult) -> dict[str, Any]:
    """The result's structured JSON, required to equal its first text block
    (the contract gives both, for clients that read only text)."""
    data = result.structured_content
    check(isinstance(data, dict), f"{name}: structuredContent is not an object: {data!r}")
    check(bool(result.content), f"{name}: no content blocks beside structuredContent")
    first = result.content[0]
    check(
        isinstance(first, types.TextContent),
        f"{name}: content[0] is {type(first).__name__}, not text",
    )
    try:
        text_json = json.loads(first.text)
    except json.JSONDecodeError as error:
        raise Failure(f"{name}: content[0].text is not JSON ({error}): {first.text[:200]!r}") from None
    check(
        text_json == data,
        f"{name}: content[0].text and structuredContent differ:\n  text: {first.text[:300]}\n  structured: {json.dumps(data)[:300]}",
    )
    return data


async def call(
    session: ClientSession,
    name: str,
    arguments: dict[str, Any],
    *,
    seconds: float = CALL_SECONDS,
    progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Calls a tool that must succeed; its structured result."""
    result = await session.call_tool(
        name, arguments, read_timeout_seconds=seconds, progress_callback=progress
    )
    if result.is_error:
        data = result.structured_content or {}
        text = result.content[0].text if result.content and isinstance(result.content[0], types.TextContent) else ""
        raise Failure(
            f"{name} {json.dumps(arguments)} failed: {data.get('error', text)!s}"
            + (f" (hint: {data['hint']})" if data.get("hint") else "")
        )
    return structured(name, result)


def tool_error(name: str, result: types.CallToolResult) -> dict[str, Any]:
    """A failed tool's structured `{error, hint}` (the contract's shape)."""
    check(result.is_error is True, f"{name}: expected isError: true, got a result: {result.structured_content}")
    data = structured(name, result)
    check(isinstance(data.get("error"), str) and data["error"] != "", f"{name}: no `error` text in {data}")
    return data


def check_tools(tools: list[types.Tool]) -> str:
    by_name = {tool.name: tool for tool in tools}
    missing = sorted(set(TOOLS) - set(by_name))
    check(not missing, f"tools missing from tools/list: {missing} (listed: {sorted(by_name)})")
    for name, (required, arguments) in TOOLS.items():
        schema = by_name[name].input_schema
        check(schema.get("type") == "object", f"{name}: inputSchema type is {schema.get('type')!r}, not 'object'")
        properties = schema.get("properties") or {}
        check(isinstance(properties, dict), f"{name}: inputSchema.properties is not an object")
        absent = sorted(arguments - set(properties))
        check(not absent, f"{name}: inputSchema lacks arguments {absent} (has {sorted(properties)})")
        listed = set(schema.get("required") or [])
        check(
            listed == required,
            f"{name}: inputSchema.required is {sorted(listed)}, the contract's is {sorted(required)}",
        )
    extra = sorted(set(by_name) - set(TOOLS))
    return f"{len(tools)} tools, schemas as documented" + (f" (beyond the contract: {extra})" if extra else "")


def workspace_names(listing: dict[str, Any]) -> list[str]:
    workspaces = listing.get("workspaces")
    check(isinstance(workspaces, list), f"list_workspaces: no `workspaces` list in {listing}")
    return [w.get("name") for w in workspaces]


async def retrying(seconds: float, attempt: Callable[[], Awaitable[tuple[bool, Any]]]) -> tuple[bool, Any, int]:
    """Runs `attempt` until it says done or `seconds` pass; (done, last value, attempts)."""
    deadline = time.monotonic() + seconds
    tries = 0
    while True:
        tries += 1
        done, value = await attempt()
        if done or time.monotonic() >= deadline:
            return done, value, tries
        await anyio.sleep(0.5)


@dataclass
class Notifications:
    """What the server pushed that no request waits for."""

    resource_updates: list[str] = field(default_factory=list)
    # When each update came (time.monotonic()), beside resource_updates.
    resource_update_times: list[float] = field(default_factory=list)
    resource_list_changes: int = 0

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.resource_updates.append(message.params.uri)
            self.resource_update_times.append(time.monotonic())
        elif isinstance(message, types.ResourceListChangedNotification):
            self.resource_list_changes += 1
        elif isinstance(message, Exception):
            print(f"info transport: {message!r}", flush=True)


async def handshake_flow(server: StdioServerParameters, args: argparse.Namespace) -> list[str]:
    """The whole flow over the handshake era (ClientSession + initialize());
    the tools' names."""
    global current_era
    current_era = "handshake"
    pushed = Notifications()
    async with stdio_client(server) as (read, write), ClientSession(
        read, write, message_handler=pushed.handle
    ) as session:
        step = Step("initialize")
        init = await session.initialize()
        step.done(
            f"protocol {init.protocol_version}, server {init.server_info.name} {init.server_info.version}"
        )
        return await workspace_flow(
            session, init.capabilities, pushed, args, subscribe=True, force_destroy=False
        )


async def auto_flow(server: StdioServerParameters, args: argparse.Namespace, handshake_tools: list[str] | None) -> bool:
    """The SDK's high-level Client in its default mode: server/discover first,
    the initialize handshake where the server does not answer it. Over the
    modern era the whole flow runs again; over a fallback only the tools are
    listed. Whether the modern era was spoken."""
    global current_era
    current_era = "auto"
    pushed = Notifications()
    step = Step("Client(mode='auto')")
    async with Client(server, cache=None, message_handler=pushed.handle) as client:
        modern = client.session.discover_result is not None
        current_era = "modern" if modern else "auto/handshake"
        era = "server/discover" if modern else "initialize (fallback)"
        step.done(f"protocol {client.protocol_version} via {era}")
        if modern:
            tools = await workspace_flow(
                client.session,
                client.server_capabilities,
                pushed,
                args,
                subscribe=False,
                force_destroy=True,
                listen=client.listen,
            )
        else:
            step = Step("tools/list")
            tools = [tool.name for tool in (await client.list_tools()).tools]
            step.done(f"{len(tools)} tools")
    if handshake_tools is not None:
        check(
            sorted(tools) == sorted(handshake_tools),
            f"the eras list other tools: {sorted(tools)} vs {sorted(handshake_tools)}",
        )
    return modern


async def workspace_flow(
    session: ClientSession,
    capabilities: types.ServerCapabilities,
    pushed: Notifications,
    args: argparse.Namespace,
    *,
    subscribe: bool,
    force_destroy: bool,
    listen: Listen | None = None,
) -> list[str]:
    """create -> launch -> http -> run -> logs -> log notifications ->
    errors -> destroy, on a connected session; the tools' names. With
    `listen` (the modern era's Client.listen) the log's change comes over
    subscriptions/listen, else over the legacy resources/subscribe."""
    check(capabilities.tools is not None, "the server declares no tools capability")

    step = Step("tools/list")
    tools = (await session.list_tools()).tools
    step.done(check_tools(tools))

    # resources/subscribe belongs to the handshake era (2026-07-28 has
    # subscriptions/listen instead).
    subscribed = False
    resources = capabilities.resources
    if subscribe and resources is not None and resources.subscribe:
        with warnings.catch_warnings():
            # Deprecated for 2026-07-28 only; this is the handshake era.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.subscribe_resource("dual://workspaces")
        subscribed = True

    step = Step("create_workspace")
    created = await call(session, "create_workspace", {"branch": args.branch, "repo": args.repo})
    for key in ("workspace", "branch", "repo", "clone", "notes"):
        check(key in created, f"create_workspace: no `{key}` in {created}")
    workspace = created["workspace"]
    check(created["branch"] == args.branch, f"create_workspace: branch {created['branch']!r}, not {args.branch!r}")
    if args.expect_workspace:
        check(workspace == args.expect_workspace, f"create_workspace: workspace {workspace!r}, expected {args.expect_workspace!r}")
    check(isinstance(created["notes"], list), f"create_workspace: notes is not a list: {created['notes']!r}")
    step.done(f"{workspace} at {created['clone']}")

    step = Step("launch")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    launched = await call(session, "launch", {"workspace": workspace}, seconds=LAUNCH_SECONDS, progress=on_progress)
    for key in ("workspace", "container", "engine", "urls", "services", "ready"):
        check(key in launched, f"launch: no `{key}` in {launched}")
    check(launched["ready"] is True, f"launch: ready is {launched['ready']!r} with wait_ready by default: {launched}")
    check(bool(launched["urls"]), f"launch: no urls: {launched}")
    service_names = [s.get("name") for s in launched["services"]]
    check(args.service in service_names, f"launch: service `{args.service}` not in {service_names}")
    check(len(progress) >= 1, "launch: no progress notification for a request carrying a progressToken")
    messages = [m for _, _, m in progress if m]
    step.done(
        f"{launched['container']} on {launched['engine']}, urls {launched['urls']}, "
        f"{len(progress)} progress notifications (last: {messages[-1] if messages else None!r})"
    )

    step = Step("http_request")

    first_answer: list[str] = []

    async def fetch_page() -> tuple[bool, dict[str, Any]]:
        result = await session.call_tool("http_request", {"workspace": workspace}, read_timeout_seconds=CALL_SECONDS)
        if result.is_error:
            # Reported below only if the page never comes.
            first_answer.append(f"isError {(result.structured_content or {}).get('error')!r}")
            return False, {"url": "?", "status": None, "body": json.dumps(result.structured_content)}
        page = structured("http_request", result)
        if not first_answer:
            first_answer.append(f"{page.get('status')} {str(page.get('body'))[:80]!r}")
        return page.get("status") == 200 and page.get("body") == args.expect_body, page

    answered, page, tries = await retrying(15, fetch_page)
    for key in ("url", "status", "headers", "body", "body_bytes", "truncated"):
        check(key in page, f"http_request: no `{key}` in {page}")
    check(
        answered,
        f"http_request: {page['url']} answered {page['status']} {page['body'][:200]!r}, expected 200 {args.expect_body!r}",
    )
    check(page["truncated"] is False, f"http_request: truncated a {page['body_bytes']}-byte body")
    check(page["body_bytes"] == len(args.expect_body.encode()), f"http_request: body_bytes {page['body_bytes']}")
    # `ready: true` says the service answers: the first request should.
    check(tries == 1, f"launch said ready: true, yet the first http_request got {first_answer[0]}")
    step.done(f"{page['url']} -> {page['status']} {page['body']!r}")

    step = Step("run (exit 3)")
    ran = await call(
        session,
        "run",
        {"workspace": workspace, "argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]},
    )
    expected: dict[str, Any] = {
        "exit_code": 3,
        "timed_out": False,
        "stdout": "out\n",
        "stderr": "err\n",
        "stdout_bytes": 4,
        "stderr_bytes": 4,
    }
    wrong = {key: ran.get(key, "<absent>") for key, value in expected.items() if ran.get(key, "<absent>") != value}
    check(not wrong, f"run: expected {expected}, these differ: {wrong} (notes: {ran.get('notes')})")
    step.done("exit_code 3, stdout 'out\\n', stderr 'err\\n'")

    step = Step("run (cwd, env)")
    ran = await call(
        session,
        "run",
        {
            "workspace": workspace,
            "argv": ["sh", "-c", 'printf "%s %s" "$GREETING" "$(basename "$PWD")"'],
            "env": {"GREETING": "hello"},
            "cwd": ".",
        },
    )
    check(ran.get("exit_code") == 0, f"run: exit_code {ran.get('exit_code')!r}, stderr {ran.get('stderr')!r}")
    check(ran.get("stdout", "").startswith("hello "), f"run: env GREETING not seen: {ran.get('stdout')!r}")
    step.done(f"stdout {ran['stdout']!r}")

    step = Step("logs")
    start_line = "listening on :"

    async def read_logs() -> tuple[bool, dict[str, Any]]:
        logs = await call(session, "logs", {"workspace": workspace, "service": args.service})
        texts = [entry.get("text", "") for entry in logs.get("logs", []) if entry.get("service") == args.service]
        return any(start_line in text for text in texts), logs

    found, logs, _ = await retrying(10, read_logs)
    check(isinstance(logs.get("logs"), list), f"logs: no `logs` list in {logs}")
    check(found, f"logs: no `{start_line}` in the {args.service} service's log: {json.dumps(logs)[:600]}")
    entry = next(e for e in logs["logs"] if e.get("service") == args.service)
    for key in ("service", "text", "next", "lost"):
        check(key in entry, f"logs: no `{key}` in {entry}")
    line = next(line for line in entry["text"].splitlines() if start_line in line)
    step.done(f"{line.strip()!r}")

    step = Step(f"log notification ({'subscriptions/listen' if listen else 'resources/subscribe'})")
    log_uri = f"dual://workspaces/{workspace}/log"
    if listen is not None:
        latency = await log_update_by_listen(session, listen, workspace, log_uri, args.service)
    else:
        latency = await log_update_by_subscribe(session, pushed, workspace, log_uri, args.service)
    log = await session.read_resource(log_uri)
    log_text = "".join(c.text for c in log.contents if isinstance(c, types.TextResourceContents))
    service_lines = [line for line in log_text.splitlines() if line.startswith(f"{args.service} | ")]
    check(
        any(start_line in line for line in service_lines),
        f"{log_uri} after the restart lacks the {args.service} service's `{start_line}` line: {log_text[-600:]!r}",
    )
    step.done(
        f"{log_uri} updated {latency}; "
        f"it reads {len(service_lines)} `{args.service} | ` lines"
    )

    step = Step("resources")
    listed = await session.read_resource("dual://workspaces")
    check(bool(listed.contents), "resources/read dual://workspaces: no contents")
    first = listed.contents[0]
    check(isinstance(first, types.TextResourceContents), "dual://workspaces: not text")
    check(workspace in first.text, f"dual://workspaces does not name {workspace}: {first.text[:300]}")
    log = await session.read_resource(log_uri)
    log_text = "".join(c.text for c in log.contents if isinstance(c, types.TextResourceContents))
    check(start_line in log_text, f"{log_uri} lacks the start line: {log_text[:300]!r}")
    step.done(f"dual://workspaces names it; {log_uri} has the start line")

    step = Step("unknown tool")
    surfaced = await protocol_error(session, "no_such_tool", {})
    step.done(surfaced)

    step = Step("wrong argument type")
    surfaced = await protocol_error(session, "run", {"workspace": workspace, "argv": "echo not-a-list"})
    step.done(surfaced)

    step = Step("session after errors")
    names = workspace_names(await call(session, "list_workspaces", {}))
    check(workspace in names, f"list_workspaces after the errors: {workspace} not in {names}")
    step.done(f"list_workspaces lists {len(names)} workspace(s)")

    step = Step("destroy refuses unpushed work")
    git(created["clone"], "commit", "--quiet", "--allow-empty", "-m", "unpushed work")
    refused = await session.call_tool("destroy", {"workspace": workspace}, read_timeout_seconds=120)
    error = tool_error("destroy", refused)
    said = f"{error['error']} {error.get('hint', '')}"
    check("unpushed" in said or "not pushed" in said, f"destroy: the refusal does not say what is unpushed: {error}")
    check("force" in error.get("hint", ""), f"destroy: the refusal's hint does not name `force`: {error}")
    step.done(f"isError: {error['error']!r}, hint {error.get('hint')!r}")

    # Over the handshake era the work goes (destroy then needs no force, as
    # the CLI's); over the modern era force:true throws it away.
    step = Step(f"destroy ({'force' if force_destroy else 'no force, once the work is gone'})")
    arguments: dict[str, Any] = {"workspace": workspace}
    if force_destroy:
        arguments["force"] = True
    else:
        git(created["clone"], "reset", "--quiet", "--hard", "HEAD~1")
    destroyed = await call(session, "destroy", arguments, seconds=120)
    check(destroyed.get("workspace") == workspace, f"destroy: workspace {destroyed.get('workspace')!r}")
    check(isinstance(destroyed.get("removed"), list), f"destroy: no `removed` list in {destroyed}")
    check(not os.path.exists(created["clone"]), f"destroy: the clone {created['clone']} is still there")
    step.done(f"removed {destroyed['removed']}")

    step = Step("list_workspaces")
    names = workspace_names(await call(session, "list_workspaces", {}))
    check(workspace not in names, f"list_workspaces still lists {workspace} after destroy: {names}")
    step.done(f"{workspace} gone ({len(names)} left)")

    step = Step("change notifications")
    if subscribed:
        got, _, _ = await retrying(5, lambda: _ready(bool(pushed.resource_updates)))
        check(got, "subscribed to dual://workspaces, yet no notifications/resources/updated came through create, launch and destroy")
        step.done(
            f"{len(pushed.resource_updates)} resources/updated ({sorted(set(pushed.resource_updates))}), "
            f"{pushed.resource_list_changes} list_changed"
        )
    else:
        step.done(
            f"info: not subscribed (resources capability: {resources}); "
            f"{pushed.resource_list_changes} list_changed seen"
        )
    return [tool.name for tool in tools]


Listen = Callable[..., AbstractAsyncContextManager[Subscription]]


@dataclass
class Restart:
    """When restart_service was sent and when it answered (time.monotonic())."""

    sent: float
    answered: float

    def latency(self, at: float) -> str:
        return f"{at - self.sent:.2f}s after restart_service was sent ({at - self.answered:+.2f}s from its answer)"


async def restart(session: ClientSession, workspace: str, service: str) -> Restart:
    sent = time.monotonic()
    restarted = await call(session, "restart_service", {"workspace": workspace, "service": service})
    check(service in (restarted.get("restarted") or []), f"restart_service: {service} not restarted: {restarted}")
    return Restart(sent, time.monotonic())


async def log_update_by_listen(
    session: ClientSession, listen: Listen, workspace: str, log_uri: str, service: str
) -> str:
    """subscriptions/listen on the log around a restart: how long until the
    log's ResourceUpdated came."""
    async with listen(resources_list_changed=True, resource_subscriptions=[log_uri]) as subscription:
        honored = subscription.honored.resource_subscriptions or []
        check(log_uri in honored, f"subscriptions/listen: {log_uri} not honored: {subscription.honored}")
        restarted = await restart(session, workspace, service)
        seen: list[str] = []
        with anyio.move_on_after(NOTIFY_SECONDS):
            async for event in subscription:
                seen.append(repr(event))
                if isinstance(event, ResourceUpdated) and event.uri == log_uri:
                    return restarted.latency(time.monotonic())
        raise Failure(
            f"no ResourceUpdated for {log_uri} within {NOTIFY_SECONDS}s of restart_service "
            f"(events seen: {seen or 'none'})"
        )


async def log_update_by_subscribe(
    session: ClientSession, pushed: Notifications, workspace: str, log_uri: str, service: str
) -> str:
    """resources/subscribe to the log around a restart: how long until its
    notifications/resources/updated came."""
    with warnings.catch_warnings():
        # Deprecated for 2026-07-28 only; this is the handshake era.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await session.subscribe_resource(log_uri)
    before = len(pushed.resource_updates)
    restarted = await restart(session, workspace, service)

    def arrived() -> str | None:
        for uri, at in zip(pushed.resource_updates[before:], pushed.resource_update_times[before:]):
            if uri == log_uri:
                return restarted.latency(at)
        return None

    got, latency, _ = await retrying(NOTIFY_SECONDS, lambda: _ready_with(arrived()))
    check(
        got,
        f"subscribed to {log_uri}, yet no notifications/resources/updated for it within {NOTIFY_SECONDS}s "
        f"of restart_service (updates seen: {pushed.resource_updates[before:] or 'none'})",
    )
    return latency


async def _ready_with(value: str | None) -> tuple[bool, str | None]:
    return value is not None, value


def git(clone: str, *arguments: str) -> None:
    """git in the workspace's clone on this host, as its user would."""
    done = subprocess.run(
        ["git", "-c", "user.email=flow@example.com", "-c", "user.name=flow", *arguments],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    check(done.returncode == 0, f"git {' '.join(arguments)} in {clone}: {done.stderr.strip()}")


async def _ready(value: bool) -> tuple[bool, None]:
    return value, None


async def protocol_error(session: ClientSession, name: str, arguments: dict[str, Any]) -> str:
    """What the SDK surfaces for a call the server must reject: an MCPError
    (a JSON-RPC error), or a tool result with isError (the SDK's docs allow
    either for bad arguments); a plain success fails."""
    try:
        result = await session.call_tool(name, arguments, read_timeout_seconds=CALL_SECONDS)
    except MCPError as error:
        return f"MCPError code {error.code}: {error.message}"
    data = tool_error(name, result)
    return f"CallToolResult isError: {data['error']}" + (f" (hint: {data['hint']})" if data.get("hint") else "")


async def modern_mode(server: StdioServerParameters) -> None:
    """A connection pinned to the modern era (no initialize at all): reported,
    not required, since the server's SDK decides which eras it speaks."""
    step = Step(f"Client(mode='{MODERN_VERSION}')")
    try:
        with anyio.fail_after(20):
            async with Client(server, mode=MODERN_VERSION, cache=None) as client:
                tools = (await client.list_tools()).tools
                listing = (await client.call_tool("list_workspaces", {})).structured_content
        check(isinstance(listing, dict) and "workspaces" in listing, f"list_workspaces gave {listing}")
        step.done(f"{len(tools)} tools and list_workspaces over {MODERN_VERSION}")
    except Exception as error:  # reported, whatever it is
        step.done(f"info: not spoken: {describe(error)}")


def describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(e) for e in error.exceptions)
    if isinstance(error, MCPError):
        return f"MCPError code {error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def failure_in(error: BaseException) -> Failure | None:
    """The Failure inside anyio's exception groups, if that is what ended the flow."""
    if isinstance(error, Failure):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := failure_in(inner)) is not None:
                return found
    return None


ERAS = ("handshake", "auto", "modern")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dual", default=os.environ.get("DUAL_BIN", "dual"), help="the dual binary (default: $DUAL_BIN, else dual on PATH)")
    parser.add_argument("--repo", required=True, help="the registered repo to create the workspace in")
    parser.add_argument("--branch", required=True, help="the workspace's branch")
    parser.add_argument("--expect-body", required=True, help="what the dev server answers on /")
    parser.add_argument("--expect-workspace", help="the workspace name create_workspace must give")
    parser.add_argument("--service", default="web", help="the dev server's service name (default: web)")
    parser.add_argument("--eras", default=",".join(ERAS), help=f"which of {','.join(ERAS)} to run")
    args = parser.parse_args()
    eras = [era.strip() for era in args.eras.split(",") if era.strip()]
    unknown = [era for era in eras if era not in ERAS]
    if unknown:
        parser.error(f"unknown eras {unknown}; pick from {ERAS}")

    server = StdioServerParameters(command=args.dual, args=["mcp"], env=dict(os.environ))

    async def flow() -> None:
        tools = None
        if "handshake" in eras:
            tools = await handshake_flow(server, args)
        modern = False
        if "auto" in eras:
            modern = await auto_flow(server, args, tools)
        if "modern" in eras and not modern:
            await modern_mode(server)

    started = time.monotonic()
    try:
        anyio.run(flow)
    except BaseException as error:  # the first failure, said once
        if isinstance(error, KeyboardInterrupt):
            raise
        failure = failure_in(error)
        why = failure if failure is not None else describe(error)
        print(f"FAIL {current_step}: {why}", file=sys.stderr, flush=True)
        return 1
    print(f"ok   all ({time.monotonic() - started:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
