package main

import "github.com/coder/websocket"

func websocketCloseStatus(err error) websocket.StatusCode { return websocket.CloseStatus(err) }
