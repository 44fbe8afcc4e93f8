package callback

import "slices"

// Documented lists the callback commands the IM documents, published by
// imhub or not, so that imhub_callbacks_total counts each of them by name
// and every other name as "other": the label's values stay a set fixed
// here, whatever a caller puts in CallbackCommand. The names are those of
// the IM's webhook pages, gathered from its list of callback commands
// (https://www.tencentcloud.com/document/product/1047/34355) and the
// pages of the newer ones (topics, member fields, owner changes, message
// extensions, official accounts and follows, each under
// https://www.tencentcloud.com/document/product/1047/; message edits,
// under https://cloud.tencent.com/document/product/269/).
var Documented = []string{
	// Online status.
	"State.StateChange",
	// Profiles and the relationship chain.
	"Profile.CallbackPortraitSet",
	"Sns.CallbackPrevFriendAdd", "Sns.CallbackPrevFriendResponse",
	"Sns.CallbackFriendAdd", "Sns.CallbackFriendDelete",
	"Sns.CallbackBlackListAdd", "Sns.CallbackBlackListDelete",
	"Follow.CallbackAfterFollowAdd", "Follow.CallbackAfterFollowDelete",
	// One-to-one messages.
	"C2C.CallbackBeforeSendMsg", "C2C.CallbackAfterSendMsg",
	"C2C.CallbackAfterMsgReport", "C2C.CallbackAfterMsgWithDraw",
	"C2C.CallbackAfterModifyMsg", "C2C.CallbackAfterC2CMsgExtension",
	// Groups.
	"Group.CallbackBeforeCreateGroup", "Group.CallbackAfterCreateGroup",
	"Group.CallbackBeforeApplyJoinGroup", "Group.CallbackBeforeInviteJoinGroup",
	"Group.CallbackAfterNewMemberJoin", "Group.CallbackAfterMemberExit",
	"Group.CallbackBeforeSendMsg", "Group.CallbackAfterSendMsg",
	"Group.CallbackSendMsgException", "Group.CallbackAfterRecallMsg",
	"Group.CallbackAfterGroupFull", "Group.CallbackAfterGroupDestroyed",
	"Group.CallbackAfterGroupInfoChanged", "Group.CallbackOnMemberStateChange",
	"Group.CallbackAfterMemberFieldChanged", "Group.CallbackAfterGroupAttrChanged",
	"Group.CallbackAfterReadReceipt", "Group.CallbackAfterGroupMsgExtension",
	"Group.CallbackAfterModifyMsg", "Group.CallbackAfterChangeGroupOwner",
	// Topics of community groups.
	"Group.CallbackBeforeCreateTopic", "Group.CallbackAfterCreateTopic",
	"Group.CallbackAfterTopicDestroyed", "Group.CallbackAfterTopicInfoChanged",
	// Official accounts.
	"OfficialAccount.CallbackAfterSendMsg", "OfficialAccount.CallbackAfterOfficialAccountInfoChanged",
}

// OtherCommand is the command label of a name the IM does not document.
const OtherCommand = "other"

// commandLabel keeps the label's values to a known set: the command comes
// from the request and must not create series at a caller's will. A
// command imhub publishes is its own label, and so is any other the IM
// documents; anything else is OtherCommand.
func commandLabel(cmd string) string {
	if slices.Contains(Commands, cmd) || slices.Contains(Documented, cmd) {
		return cmd
	}
	return OtherCommand
}
