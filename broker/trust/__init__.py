"""Who is who: key material, keystores, the participant registry, signed records and snapshots.

A participant's node and the registry authority are separate trust domains:
`broker.trust.node` is what an organisation runs (its own keys, the snapshots
it has accepted), `broker.trust.authority` is the offline authority that
approves registration requests and signs registry snapshots. Everything else
here is shared by both: key material and ids, the encrypted keystore, the
registry facts, signed participant records, snapshots, and the keyring that
answers which public key may be used when.
"""
