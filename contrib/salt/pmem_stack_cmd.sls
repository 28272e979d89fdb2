# The same stack without a custom module: cmd.run with `stateful: True`. The binary
# prints one JSON object whose `changed` and `comment` Salt reads (the rest of it becomes
# the changes when something changed); success comes from its exit status. Under
# test=True Salt runs `test_name` instead, the binary with --check: it plans, changes
# nothing, and its pending changes make the result None. The arguments go on stdin, so
# test=True needs no file on the minion.
{% load_yaml as pmem_args %}
namespaces:
  - {name: pm0, region: region0, mode: fsdax}
  - {name: pm1, region: region1, mode: fsdax}
devices:
  - {name: pmem-striped, target: striped, members: [pm0, pm1], chunk: 2M}
filesystems:
  - {device: pmem-striped, type: xfs, label: pmemfs}
mounts:
  - {path: /mnt/pmem, device: pmem-striped, dax: always}
{% endload %}

pmem-striped-cmd:
  cmd.run:
    - name: /usr/local/bin/pmem_stack
    - stdin: |
        {{ pmem_args | json }}
    - stateful:
      - test_name: /usr/local/bin/pmem_stack --check
