#!/usr/bin/env python3
"""Asks a gRPC server what a standard tool would, with no .proto files:
the health of each named service (grpc.health.v1), the services listed
by server reflection, and the tunnels from a ListTunnels call whose
messages come from reflection alone. Prints one JSON object.

Needs grpcio, grpcio-health-checking and grpcio-reflection (scripts/setup).

  grpc_probe.py TARGET [--ca FILE [--cert FILE --key FILE] [--server-name NAME]]
                [--health SERVICE]... [--reflect] [--list-tunnels]

TARGET is `unix:/path` or `host:port`. With --ca the channel uses TLS and
trusts FILE; --cert/--key present a client certificate. A failed call is
reported as {"error": CODE} in its place, so the caller can assert it.
"""

import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

TIMEOUT = 5


def channel(args):
    if not args.ca:
        # gRPC's default authority for a Unix socket is its %-encoded path,
        # which the server's HTTP/2 stack refuses as an authority.
        return grpc.insecure_channel(
            args.target, [("grpc.default_authority", "localhost")]
        )
    with open(args.ca, "rb") as f:
        ca = f.read()
    cert = key = None
    if args.cert:
        with open(args.cert, "rb") as f:
            cert = f.read()
        with open(args.key, "rb") as f:
            key = f.read()
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    options = []
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.target, credentials, options)


def failure(error):
    return {"error": error.code().name, "details": error.details()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--server-name")
    parser.add_argument("--health", action="append", default=[])
    parser.add_argument("--reflect", action="store_true")
    parser.add_argument("--list-tunnels", action="store_true")
    args = parser.parse_args()

    out = {}
    with channel(args) as chan:
        if args.health:
            stub = health_pb2_grpc.HealthStub(chan)
            out["health"] = {}
            for service in args.health:
                try:
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT
                    )
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    out["health"][service] = status
                except grpc.RpcError as error:
                    out["health"][service] = failure(error)
        if args.reflect or args.list_tunnels:
            database = ProtoReflectionDescriptorDatabase(chan)
            try:
                out["services"] = sorted(database.get_services())
            except grpc.RpcError as error:
                out["services"] = failure(error)
        if args.list_tunnels and isinstance(out.get("services"), list):
            pool = descriptor_pool.DescriptorPool(database)
            method = pool.FindServiceByName("wgd.v1.TunnelService").FindMethodByName(
                "ListTunnels"
            )
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            call = chan.unary_unary(
                "/wgd.v1.TunnelService/ListTunnels",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
            try:
                reply = call(request(), timeout=TIMEOUT)
                out["tunnels"] = [tunnel.name for tunnel in reply.tunnels]
            except grpc.RpcError as error:
                out["tunnels"] = failure(error)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
