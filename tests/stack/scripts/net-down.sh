#!/bin/bash
# usage: net-down.sh NS_A NS_B   (deleting a namespace deletes its veth ends, and so their peers)
for n in "$@"; do ip netns del "$n" 2>/dev/null; done; true
