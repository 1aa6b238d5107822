"""The official Python client's dynamic discovery: what fresh discovery yields for the
Deployment resource and its status subresource must equal what the client decodes back from
its discovery cache file. Prints the differences and exits 1 when there are any."""

import json
import os
import sys
import tempfile

from kubernetes import config
from kubernetes.dynamic import DynamicClient


def described(client):
    deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
    status = deployments.subresources["status"]
    return {"deployments": deployments.to_dict(), "deployments/status": status.to_dict()}


def main():
    cache = os.path.join(tempfile.mkdtemp(), "discovery.json")
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    fresh = described(DynamicClient(api, cache_file=cache))
    assert os.path.exists(cache), "no cache file written"
    cached = described(DynamicClient(api, cache_file=cache))
    differences = {
        name: {"fresh": fresh[name], "cached": cached[name]}
        for name in fresh
        if json.dumps(fresh[name], sort_keys=True) != json.dumps(cached[name], sort_keys=True)
    }
    print(json.dumps({"fresh": fresh, "differences": differences}, indent=1, sort_keys=True))
    sys.exit(1 if differences else 0)


main()
