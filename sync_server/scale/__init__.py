"""Scale-out: several ``tandem serve`` processes on one storage, coordinated through Redis
(cross-node fan-out of updates and presence, leases for the change-feed consumers)."""
