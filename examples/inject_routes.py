#!/usr/bin/env python3
"""Offer routes to wgd's route bridge over its gRPC API, then list them.

By default the routes come from a Session, as a routing program would send
them: they stay while the session is open and for its hold time after.
With --static they are added with AddRoutes and stay until deleted;
--delete removes such routes with DeleteRoutes.

Needs `pip install grpcio grpcio-tools`. The Python stubs are generated
from wgd's .proto files at each run, into a temporary folder.
"""

import argparse
import importlib
import importlib.resources
import queue
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto" / "proto"


def load_stubs():
    """Runs protoc on route.proto (and what it imports); the two modules."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="wgd-stubs-") as out:
        status = protoc.main([
            "protoc", f"-I{PROTO_DIR}", f"-I{well_known}",
            f"--python_out={out}", f"--grpc_python_out={out}",
            "wgd/v1/tunnel.proto", "wgd/v1/route.proto",
        ])
        if status != 0:
            sys.exit(f"protoc failed on {PROTO_DIR}")
        sys.path.insert(0, out)
        try:
            return (importlib.import_module("wgd.v1.route_pb2"),
                    importlib.import_module("wgd.v1.route_pb2_grpc"))
        finally:
            sys.path.remove(out)


pb, pb_grpc = load_stubs()


def state_name(state):
    return pb.RouteState.Name(state).removeprefix("ROUTE_STATE_")


def print_results(results):
    """One line per route; whether any was refused (or failed in the kernel)."""
    refused = False
    for result in results:
        print(f"  {result.prefix:<20} {state_name(result.state):<10} {result.reason}".rstrip())
        refused |= result.state in (pb.ROUTE_STATE_REFUSED, pb.ROUTE_STATE_FAILED)
    return refused


def next_of(responses, kind):
    """Reads the session's answers up to the next one of `kind`."""
    for response in responses:
        if response.WhichOneof("kind") == kind:
            return getattr(response, kind)
    sys.exit(f"the session ended before its {kind}")


def run_session(stub, args, routes):
    """Hello, one batch, EndOfRib; lists the routes, waits --keep, then ends."""
    outbox = queue.Queue()
    responses = stub.Session(iter(outbox.get, None))  # None ends our side.
    outbox.put(pb.SessionRequest(hello=pb.Hello(owner=args.owner, hold_time_seconds=args.hold)))
    welcome = next_of(responses, "welcome")
    print(f"session as {args.owner!r}: {welcome.stale_routes} stale route(s) kept from before")
    add = pb.RouteUpdate.OPERATION_ADD
    updates = [pb.RouteUpdate(operation=add, route=route) for route in routes]
    outbox.put(pb.SessionRequest(batch=pb.RouteBatch(id=1, updates=updates)))
    refused = print_results(next_of(responses, "batch_result").results)
    outbox.put(pb.SessionRequest(end_of_rib=pb.EndOfRib()))
    print(f"end of RIB: {next_of(responses, 'end_of_rib').withdrawn} stale route(s) withdrawn")
    show_routes(stub, args.owner)
    time.sleep(args.keep)
    outbox.put(None)
    for _ in responses:  # Tunnel events, until wgd ends its side too.
        pass
    return refused


def show_routes(stub, owner):
    print(f"routes of {owner!r}:")
    for entry in stub.ListRoutes(pb.ListRoutesRequest(owner=owner)).routes:
        via = ", ".join(" dev ".join(filter(None, (hop.address, hop.tunnel)))
                        for hop in entry.nexthops)
        stale = " (stale)" if entry.stale else ""
        print(f"  {entry.prefix:<20} {entry.owner:<14} via {via:<16} "
              f"{state_name(entry.state)}{stale} {entry.reason}".rstrip())
    stats = stub.GetStatistics(pb.GetStatisticsRequest())
    print(f"statistics: {stats.kernel_routes} kernel route(s), {stats.fib_operations} FIB "
          f"operation(s), {stats.fib_errors} error(s)")
    for owner in stats.owners:
        held = ""
        if owner.HasField("hold_remaining_seconds"):
            held = f", kept {owner.hold_remaining_seconds} s more"
        print(f"  {owner.owner:<14} connected={owner.connected} routes={owner.routes} "
              f"installed={owner.installed} queued={owner.queued} stale={owner.stale}{held}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="+", metavar="PREFIX")
    parser.add_argument("--socket", metavar="PATH", default="/run/wgd/wgd.sock",
                        help="wgd's API socket ([daemon] api)")
    parser.add_argument("--owner",
                        help='who offers the routes (default "example", or "example-static")')
    parser.add_argument("--nexthop", metavar="ADDR", help="address on a wgd tunnel to route via")
    parser.add_argument("--hold", type=int, default=0, metavar="SECONDS",
                        help="how long wgd keeps the routes after the session (0: wgd's default)")
    parser.add_argument("--keep", type=float, default=0, metavar="SECONDS",
                        help="how long to keep the session open")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--static", action="store_true", help="AddRoutes: kept until deleted")
    mode.add_argument("--delete", action="store_true", help="DeleteRoutes: remove static routes")
    args = parser.parse_args()
    args.owner = args.owner or ("example-static" if args.static or args.delete else "example")
    if not args.delete and not args.nexthop:
        parser.error("--nexthop is needed to add routes")
    routes = [pb.Route(prefix=prefix, nexthops=[pb.Nexthop(address=args.nexthop or "")])
              for prefix in args.prefixes]

    socket = Path(args.socket.removeprefix("unix:")).resolve()
    # gRPC's default authority for a Unix socket is its path, %-encoded,
    # which wgd's HTTP/2 server (hyper's h2) refuses as malformed.
    options = [("grpc.default_authority", "localhost")]
    with grpc.insecure_channel(f"unix:{socket}", options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        stub = pb_grpc.RouteServiceStub(channel)
        if args.delete:
            request = pb.DeleteRoutesRequest(owner=args.owner, prefixes=args.prefixes)
            refused = print_results(stub.DeleteRoutes(request).results)
        elif args.static:
            request = pb.AddRoutesRequest(owner=args.owner, routes=routes)
            refused = print_results(stub.AddRoutes(request).results)
        else:
            refused = run_session(stub, args, routes)
        if args.delete or args.static:
            show_routes(stub, args.owner)
    if refused:
        sys.exit("some routes were refused")


if __name__ == "__main__":
    try:
        main()
    except grpc.FutureTimeoutError:
        sys.exit("wgd's API does not answer on that socket (is `wgd run` running?)")
    except grpc.RpcError as error:
        sys.exit(f"wgd: {error.code().name}: {error.details()}")
