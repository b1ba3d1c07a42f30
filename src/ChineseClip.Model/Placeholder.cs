namespace ChineseClip.Model;
