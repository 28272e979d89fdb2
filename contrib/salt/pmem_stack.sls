# Striped pmem with xfs, mounted with DAX, through the pmem_stack state module
# (_states/pmem_stack.py beside this file, in the file root's _states/: synced to the
# minion by a highstate, by saltutil.sync_states, or by sync_mods=states). The binary
# must be on the minion at /usr/local/bin/pmem_stack (or set `binary`).
#
#   salt-call state.apply pmem_stack test=True sync_mods=states  # the pending steps (result None); changes nothing
#   salt-call state.apply pmem_stack                             # converge; again: no changes
pmem-striped:
  pmem_stack.managed:
    - namespaces:
        - {name: pm0, region: region0, mode: fsdax}
        - {name: pm1, region: region1, mode: fsdax}
    - devices:
        - {name: pmem-striped, target: striped, members: [pm0, pm1], chunk: 2M}
    - filesystems:
        - {device: pmem-striped, type: xfs, label: pmemfs}
    - mounts:
        - {path: /mnt/pmem, device: pmem-striped, dax: always}
