#!/bin/sh
echo "$reason ip=$new_ip_address router=$new_routers dns=$new_domain_name_servers host=$new_host_name domain=$new_domain_name search=$new_domain_search mtu=$new_interface_mtu" >> /tmp/dtry/rec.txt
