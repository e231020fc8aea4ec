"""Deployment to Grid5000 (or any SSH-reachable Debian hosts) with the Ansible playbooks of `ansible/`.

`inventory` turns an OAR reservation into an Ansible inventory (services on the first CPU node, trainers on the
GPU nodes), `runner` drives the playbooks through ansible-runner's Python API, and `progress` turns the
runner's event stream into one readable line per task and host.
"""
