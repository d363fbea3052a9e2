"""FLARE provisioning builders (nvflare.lighter.spec.Builder), each one module: site policies, HE keys, server settings, loopback."""
