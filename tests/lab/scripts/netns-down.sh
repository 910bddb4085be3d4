#!/bin/bash
# usage: netns-down.sh NS_A NS_B   (deleting a namespace also deletes its veth end)
for n in "$@"; do ip netns del "$n" 2>/dev/null; done; true
