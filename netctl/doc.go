package netctl
