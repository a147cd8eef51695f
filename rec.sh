#!/bin/sh
echo "$1 ip=$ip mask=$mask router=$router dns=$dns host=$hostname domain=$domain search=$search mtu=$mtu lease=$lease" >> /tmp/smk/rec.txt
case "$1" in bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface;; esac
