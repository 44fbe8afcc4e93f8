// Package api serves the server API (docs/protocol.md#server-api): the app's own backend
// publishes custom events, disconnects users, revokes their tokens and
// asks who is connected, over JSON on HTTP with an API key per app. Start
// with [New]; its [Handler] serves every /api/ path. Package apiclient is
// its Go client.
package api
