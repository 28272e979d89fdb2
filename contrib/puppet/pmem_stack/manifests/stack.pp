# @summary A persistent-memory (NVDIMM / PMEM) stack converged by the pmem_stack binary.
#
# Writes the arguments to a JSON file (root only, mode 0600) and runs the binary on it
# through an `exec` whose `unless` is the binary's own check: `--check
# --detailed-exitcode` exits 0 when nothing would change, so Puppet runs the binary only
# when something would (2), or when the check fails (1: the run then fails the resource
# with the module's message, printed as text). `unless` runs under `--noop` too, so
# `puppet apply --noop` shows the exec as pending exactly when the stack would change.
# No stdlib needed.
#
# @param args
#   The binary's arguments, as its README lists them (namespaces, devices, partitions,
#   filesystems, mounts, boot, state, allow_data_loss, verify_pmd).
# @param binary
#   Path of the pmem_stack binary on the node (not the binary's own copy for the boot
#   replay, /usr/local/libexec/pmem-stack/pmem_stack, removed with the last persisted
#   stack).
# @param args_dir
#   Where the arguments file goes: `<args_dir>/<title>.json` (the title's characters
#   other than letters, digits, `_`, `.` and `-` become `_`). Its parent must exist; not
#   under /etc/pmem-stack, which is the binary's own.
# @param timeout
#   Seconds the binary may run (formatting a large namespace takes a while).
# @param logoutput
#   The exec's `logoutput`: the binary's output in the report on failure by default.
#
# @example Linear pmem with ext4, mounted with DAX
#   pmem_stack::stack { 'pmem-linear':
#     args => {
#       'namespaces'  => [{ 'name' => 'pm0', 'region' => 'region0', 'mode' => 'fsdax' },
#                         { 'name' => 'pm1', 'region' => 'region1', 'mode' => 'fsdax' }],
#       'devices'     => [{ 'name' => 'pmem-linear', 'target' => 'linear', 'members' => ['pm0', 'pm1'] }],
#       'filesystems' => [{ 'device' => 'pmem-linear', 'type' => 'ext4' }],
#       'mounts'      => [{ 'path' => '/mnt/pmem-linear', 'device' => 'pmem-linear', 'dax' => 'always' }],
#     },
#   }
define pmem_stack::stack (
  Hash $args,
  String $binary = '/usr/local/bin/pmem_stack',
  String $args_dir = '/etc/pmem-stack-puppet',
  Integer $timeout = 600,
  Variant[Boolean, Enum['on_failure']] $logoutput = 'on_failure',
) {
  $argsfile = "${args_dir}/${regsubst($title, '[^A-Za-z0-9_.-]', '_', 'G')}.json"

  if !defined(File[$args_dir]) {
    file { $args_dir:
      ensure => directory,
      owner  => 'root',
      group  => 'root',
      mode   => '0700',
    }
  }
  file { $argsfile:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0600',
    content => inline_template('<%= require "json"; JSON.generate(@args) %>'),
  }
  exec { "pmem_stack ${title}":
    # the result as text: on failure, its lines in the report say why (the errors by
    # their path in the arguments, refusals with the option that allows them)
    command   => "${binary} --format text ${argsfile}",
    unless    => "${binary} --check --detailed-exitcode ${argsfile}",
    logoutput => $logoutput,
    timeout   => $timeout,
    require   => File[$argsfile],
  }
}
