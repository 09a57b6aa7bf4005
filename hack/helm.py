#!/usr/bin/env python3
"""Runs Helm actions through the real Helm library (the helm-sdkpy package), printing JSON.

  helm.py lint <chart>
  helm.py install|upgrade <release> <chart> <release-namespace> [values-json]
  helm.py uninstall <release> <release-namespace>

The cluster is the one KUBECONFIG points at. Used by tests/helm_chart.rs.
"""
import asyncio
import json
import os
import sys

try:
    import helm_sdkpy
except ImportError:
    sys.exit(
        "helm_sdkpy is missing: pip install --ignore-requires-python helm-sdkpy "
        "(hack/install-deps.sh does it)"
    )


def configuration(namespace):
    return helm_sdkpy.Configuration(namespace=namespace, kubeconfig=os.environ.get("KUBECONFIG"))


async def main(argv):
    action = argv[0]
    if action == "lint":
        return await helm_sdkpy.Lint(configuration("default")).run(argv[1])
    if action in ("install", "upgrade"):
        release, chart, namespace = argv[1:4]
        values = json.loads(argv[4]) if len(argv) > 4 else {}
        config = configuration(namespace)
        if action == "install":
            return await helm_sdkpy.Install(config).run(release, chart, values=values, wait=False)
        return await helm_sdkpy.Upgrade(config).run(release, chart, values=values, wait=False)
    if action == "uninstall":
        release, namespace = argv[1:3]
        return await helm_sdkpy.Uninstall(configuration(namespace)).run(release, wait=False)
    sys.exit(f"unknown action {action!r}; see the usage at the top of {__file__}")


if __name__ == "__main__":
    try:
        result = asyncio.run(main(sys.argv[1:]))
    except helm_sdkpy.HelmError as error:
        print(json.dumps({"error": str(error)}))
        sys.exit(1)
    print(json.dumps(result, default=str))
