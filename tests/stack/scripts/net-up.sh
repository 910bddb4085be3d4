#!/bin/bash
# Network of the stack tier: two lab hosts (network namespaces NS_A, NS_B), each joined to the
# root namespace by its own point-to-point veth (front-end 10.253.0.1 <-> 10.253.0.11 / .12:
# ssh from oned's drivers, UDP/TCP from the monitoring client to monitord), and to each other
# by a third veth (10.253.1.11 <-> 10.253.1.12: libvirt live migration, host-to-host ssh).
# Only interfaces created here carry these addresses; nothing is routed or forwarded anywhere.
# usage: net-up.sh NS_A NS_B ROOT_VETH_A ROOT_VETH_B
set -euo pipefail
A=$1; B=$2; RA=$3; RB=$4
ip netns add "$A"; ip netns add "$B"
ip link add "$RA" type veth peer name front0 netns "$A"
ip link add "$RB" type veth peer name front0 netns "$B"
ip -n "$A" link add mig0 type veth peer name mig0 netns "$B"
for dev in "$RA" "$RB"; do ip addr add 10.253.0.1/32 dev "$dev"; ip link set "$dev" up; done
ip route add 10.253.0.11/32 dev "$RA" src 10.253.0.1
ip route add 10.253.0.12/32 dev "$RB" src 10.253.0.1
n=11
for ns in "$A" "$B"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add 10.253.0.$n/32 dev front0; ip -n "$ns" link set front0 up
  ip -n "$ns" route add 10.253.0.1/32 dev front0 src 10.253.0.$n
  ip -n "$ns" addr add 10.253.1.$n/24 dev mig0; ip -n "$ns" link set mig0 up
  n=$((n + 1))
done
