// Package membership says whether a user is a member of a group as the IM
// says, for the apps whose secret keys the hub holds (docs/protocol.md,
// IM-native access).
//
// Start with [NewChecker] and [Checker.Check]. The IM's callbacks keep
// what it knows current: a node that receives
// Group.CallbackAfterNewMemberJoin or Group.CallbackAfterCreateGroup
// calls [Checker.Joined], Group.CallbackAfterMemberExit [Checker.Left],
// Group.CallbackAfterGroupDestroyed [Checker.Destroyed], each before it
// publishes the event, so that every node asked afterwards answers by it.
//
// Answers are kept in Redis for every node (or in memory for a hub that is
// the only node): a member's for Config.MemberTTL, a refusal's for
// Config.NonMemberTTL. What no node keeps is asked of the IM's
// get_role_in_group (https://www.tencentcloud.com/document/product/1047/34963),
// the users asked about for one group within Config.Window gathered into
// one call, on whichever node takes the group's turn; the other nodes
// wait for its answer instead of asking again.
//
// Learnt and asked answers are ordered by per-group stamps: an answer the
// IM gave to an ask begun before an exit or a disbanding was learnt is
// never kept over it, so a late answer cannot let a departed user back
// in.
package membership
