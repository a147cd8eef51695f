package nss
