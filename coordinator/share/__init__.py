"""Share groups (KIP-932) as pure cores: the share-partition state machine that a partition
leader drives (acquire, acknowledge, lock expiry, delivery counts, delayed release, dead
letters), the share-group membership and assignment that the group coordinator drives, and the
persisted share-partition state kept by the share-state coordinator. docs/queues.md."""
