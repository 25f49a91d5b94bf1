"""WidowX 250 side of vgps: MuJoCo simulator (``vgps_widowx.sim``), arm backends and selector."""
