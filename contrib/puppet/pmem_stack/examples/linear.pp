# Linear pmem with ext4, mounted with DAX: dm-linear over two fsdax namespaces (one per
# region), ext4 with the DAX geometry, mounted at /mnt/pmem-linear with -o dax=always.
#
#   puppet apply --modulepath contrib/puppet --noop contrib/puppet/pmem_stack/examples/linear.pp
#   puppet apply --modulepath contrib/puppet --detailed-exitcodes contrib/puppet/pmem_stack/examples/linear.pp
pmem_stack::stack { 'pmem-linear':
  args => {
    'namespaces'  => [
      { 'name' => 'pm0', 'region' => 'region0', 'mode' => 'fsdax' },
      { 'name' => 'pm1', 'region' => 'region1', 'mode' => 'fsdax' },
    ],
    'devices'     => [{ 'name' => 'pmem-linear', 'target' => 'linear', 'members' => ['pm0', 'pm1'] }],
    'filesystems' => [{ 'device' => 'pmem-linear', 'type' => 'ext4', 'label' => 'pmemlin' }],
    'mounts'      => [{ 'path' => '/mnt/pmem-linear', 'device' => 'pmem-linear', 'dax' => 'always' }],
  },
}
