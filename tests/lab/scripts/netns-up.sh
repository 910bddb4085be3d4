#!/bin/bash
# Two lab "hosts" as network namespaces NS_A (10.254.0.1) and NS_B (10.254.0.2) joined by a
# veth pair. Both ends live inside namespaces we create; nothing is routed anywhere else.
# usage: netns-up.sh NS_A NS_B VETH_A VETH_B   (names unique per test session)
set -euo pipefail
A=$1; B=$2; VA=$3; VB=$4
ip netns add "$A"; ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"; ip link set "$VB" netns "$B"
ip -n "$A" addr add 10.254.0.1/24 dev "$VA"; ip -n "$B" addr add 10.254.0.2/24 dev "$VB"
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set "$VA" up; ip -n "$B" link set "$VB" up
