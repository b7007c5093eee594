module wsauth/cmd/wsbench/peers/gorilla

go 1.26.0

replace wsauth => ../../../..

require (
	github.com/gorilla/websocket v1.5.3
	wsauth v0.0.0-00010101000000-000000000000
)
