"""Running a consortium: the admins' incident controls, the deny list of revoked sites and the fire drill's faults. Pure: no nvflare."""
