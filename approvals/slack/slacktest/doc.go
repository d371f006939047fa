// Package slacktest is a fake of the Slack Web API as toolgate's approval
// notifier uses it (chat.postMessage, chat.update, chat.postEphemeral,
// users.info), for tests: an http.Handler that records the form of every
// call and answers as Slack does. It can pretend to be down.
//
// It is for tests only and must never be linked into the toolgate binary.
package slacktest
