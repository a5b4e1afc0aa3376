#!/usr/bin/python3
"""A third-party client of the control API, written against the schema only.

It compiles app/api/redirect_console.proto with Debian's python3-grpc-tools at start (into a
temporary directory) and talks to a node over its Unix socket:

  api_client.py --proto PROTO --socket SOCK status
  api_client.py --proto PROTO --socket SOCK watch --destination 127.0.0.1:8080 [--timeout 20]
  api_client.py --proto PROTO --socket SOCK toggle RULE on|off

status prints the node status as JSON; watch prints one JSON line per flow update and ends (0)
once a flow to DESTINATION has ended; toggle prints the reply. A refused call prints
"DENIED <status code> <message>" and exits 3.
"""
import argparse
import atexit
import importlib
import json
import os
import shutil
import sys
import tempfile
import time


def load_api(proto):
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="redirect-api-")
    atexit.register(shutil.rmtree, out, True)  # the generated modules, gone when this client ends
    include = os.path.dirname(os.path.abspath(proto))
    grpc_include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", "-I" + include, "-I" + grpc_include, "--python_out=" + out,
                      "--grpc_python_out=" + out, os.path.abspath(proto)])
    if rc != 0:
        sys.exit("protoc failed on " + proto)
    sys.path.insert(0, out)
    return importlib.import_module("redirect_console_pb2"), importlib.import_module("redirect_console_pb2_grpc")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proto", required=True)
    parser.add_argument("--socket", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status")
    watch = sub.add_parser("watch")
    watch.add_argument("--destination", required=True)
    watch.add_argument("--timeout", type=float, default=20)
    toggle = sub.add_parser("toggle")
    toggle.add_argument("rule")
    toggle.add_argument("state", choices=["on", "off"])
    args = parser.parse_args()

    import grpc
    from google.protobuf import json_format
    pb, rpc = load_api(args.proto)
    node = rpc.NodeStub(grpc.insecure_channel("unix:" + args.socket))
    try:
        if args.command == "status":
            status = node.GetStatus(pb.GetStatusRequest(), timeout=10)
            print(json.dumps(json_format.MessageToDict(status, preserving_proto_field_name=True)), flush=True)
        elif args.command == "toggle":
            reply = node.SetRuleEnabled(pb.SetRuleEnabledRequest(rule_id=args.rule, enabled=args.state == "on"),
                                        timeout=10)
            print(json.dumps({"applied": reply.applied, "error": reply.error}), flush=True)
            return 0 if reply.applied else 1
        else:
            deadline = time.monotonic() + args.timeout
            stream = node.WatchFlows(pb.WatchFlowsRequest(), timeout=args.timeout)
            for batch in stream:
                for flow in batch.flows:
                    print(json.dumps({"sequence": batch.last_sequence, "snapshot": batch.snapshot,
                                      "destination": flow.destination, "chain": flow.chain,
                                      "ended": flow.end_unix_ns != 0, "bytes_up": flow.bytes_up}), flush=True)
                    if flow.destination == args.destination and flow.end_unix_ns != 0:
                        stream.cancel()
                        return 0
                if time.monotonic() > deadline:
                    break
            return 1
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED:
            return 0
        print("DENIED", e.code().name, e.details(), flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
