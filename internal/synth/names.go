package synth

import "strings"

// culture is a naming tradition with the language its speakers may prefer. Names are common
// ones from each tradition; combinations are random, so any resemblance to a real person is
// coincidence. Names shorter than three letters are left out so that leak scans over random
// ciphertext (see Sensitive) are not flooded with chance matches.
type culture struct {
	lang, langDisplay string // BCP 47 code and display
	weight            int
	male, female      []string
	family            []string
	twoSurnames       bool // Spanish naming: paternal and maternal surname
}

var cultures = []culture{
	{lang: "en-US", langDisplay: "English (United States)", weight: 46,
		male:   []string{"James", "Michael", "Robert", "David", "William", "Christopher", "Matthew", "Andrew", "Joshua", "Daniel", "Ethan", "Benjamin", "Samuel", "Nathan", "Tyler", "Brandon", "Gregory", "Raymond", "Douglas", "Harold", "Marcus", "Jerome", "Terrence", "Dwayne"},
		female: []string{"Mary", "Jennifer", "Elizabeth", "Patricia", "Jessica", "Sarah", "Emily", "Ashley", "Amanda", "Stephanie", "Megan", "Rachel", "Lauren", "Olivia", "Madison", "Abigail", "Hannah", "Victoria", "Catherine", "Margaret", "Keisha", "Tamika", "Latoya", "Brianna"},
		family: []string{"Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson", "Anderson", "Thompson", "Harris", "Martin", "Jackson", "Clark", "Lewis", "Walker", "Robinson", "Young", "Allen", "Wright", "Mitchell", "Campbell", "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Rogers", "Cooper", "Bennett", "Sullivan", "Henderson", "Fitzgerald", "O'Brien", "McAllister", "Washington", "Jefferson", "Schneider", "Kowalski", "Lindqvist"}},
	{lang: "es", langDisplay: "Spanish", weight: 15, twoSurnames: true,
		male:   []string{"José", "Luis", "Carlos", "Juan", "Miguel", "Alejandro", "Javier", "Diego", "Andrés", "Ricardo", "Fernando", "Mateo", "Santiago", "Joaquín"},
		female: []string{"María", "Lucía", "Sofía", "Valentina", "Camila", "Isabel", "Gabriela", "Daniela", "Carmen", "Rosa", "Ximena", "Paula", "Guadalupe", "Inés"},
		family: []string{"García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez", "Torres", "Flores", "Rivera", "Gómez", "Díaz", "Morales", "Ortiz", "Gutiérrez", "Castillo", "Jiménez", "Vargas"}},
	{lang: "en-US", langDisplay: "English (United States)", weight: 5,
		male:   []string{"Chinedu", "Oluwaseun", "Emeka", "Tunde", "Kwame", "Obinna", "Babajide", "Ikechukwu", "Kofi", "Yaw"},
		female: []string{"Ngozi", "Adaeze", "Folake", "Chiamaka", "Abena", "Yetunde", "Amara", "Nkechi", "Efua", "Ifeoma"},
		family: []string{"Okafor", "Adeyemi", "Okonkwo", "Balogun", "Mensah", "Nwosu", "Adebayo", "Oyelaran", "Asante", "Owusu", "Eze-Nwankwo"}},
	{lang: "zh", langDisplay: "Chinese", weight: 6,
		male:   []string{"Wei", "Jun", "Hao", "Lei", "Ming", "Jian", "Tao", "Yong", "Zhiwei", "Xiaoming"},
		female: []string{"Fang", "Jing", "Mei", "Ling", "Yan", "Hui", "Xiaoling", "Yuxin", "Qian", "Xiuying"},
		family: []string{"Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Zhou", "Sun", "Zhu", "Guo", "Lin", "Gao", "Luo"}},
	{lang: "vi", langDisplay: "Vietnamese", weight: 4,
		male:   []string{"Minh", "Anh", "Tuấn", "Hùng", "Dũng", "Quang", "Khoa", "Bảo"},
		female: []string{"Linh", "Thảo", "Hương", "Lan", "Ngọc", "Trang", "Mai", "Thúy"},
		family: []string{"Nguyễn", "Trần", "Phạm", "Hoàng", "Phan", "Đặng", "Bùi", "Đỗ", "Huỳnh", "Võ"}},
	{lang: "hi", langDisplay: "Hindi", weight: 6,
		male:   []string{"Arjun", "Rahul", "Vikram", "Sanjay", "Aditya", "Rohan", "Anil", "Rajesh", "Karthik", "Pranav"},
		female: []string{"Priya", "Ananya", "Deepa", "Kavya", "Lakshmi", "Meera", "Neha", "Pooja", "Sunita", "Aishwarya"},
		family: []string{"Patel", "Sharma", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Desai", "Mehta", "Chatterjee", "Krishnan"}},
	{lang: "ar", langDisplay: "Arabic", weight: 5,
		male:   []string{"Mohammed", "Ahmed", "Omar", "Youssef", "Khalid", "Hassan", "Ibrahim", "Tariq", "Karim", "Samir"},
		female: []string{"Fatima", "Aisha", "Layla", "Mariam", "Noor", "Yasmin", "Huda", "Salma", "Rania", "Zainab"},
		family: []string{"Haddad", "Khalil", "Mansour", "Nasser", "Saleh", "Farouk", "Hamdan", "Aziz", "Rahman", "Abboud", "Al-Masri"}},
	{lang: "ko", langDisplay: "Korean", weight: 4,
		male:   []string{"Minjun", "Seojun", "Jihoon", "Hyunwoo", "Dongha", "Jaewon"},
		female: []string{"Seoyeon", "Jiwoo", "Minji", "Hayoon", "Soyeon", "Eunji"},
		family: []string{"Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Yoon", "Jang", "Shin", "Han"}},
	{lang: "uk", langDisplay: "Ukrainian", weight: 4,
		male:   []string{"Oleksandr", "Dmytro", "Andriy", "Serhiy", "Mykola", "Taras", "Bohdan"},
		female: []string{"Olena", "Oksana", "Iryna", "Nataliya", "Yulia", "Kateryna", "Halyna"},
		family: []string{"Shevchenko", "Kovalenko", "Bondarenko", "Tkachenko", "Kravchenko", "Melnyk", "Lysenko", "Boyko", "Marchenko"}},
	{lang: "fr", langDisplay: "French", weight: 3,
		male:   []string{"Jean", "Pierre", "Louis", "Antoine", "Julien", "Mathieu", "Étienne", "Jean-Baptiste"},
		female: []string{"Camille", "Chloé", "Manon", "Élodie", "Juliette", "Amélie", "Marie-Claire"},
		family: []string{"Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Bonnet", "Rousseau", "Fontaine", "Mercier", "Beauchamp"}},
}

func pickCulture(g gen) culture {
	weights := make([]int, len(cultures))
	for i, c := range cultures {
		weights[i] = c.weight
	}
	return cultures[weighted(g, weights)]
}

// place is a town with its ZIP codes and telephone area codes.
type place struct {
	city, state string
	zips        []string
	areaCodes   []string
}

// Most patients live in the health system's region (central Ohio); the rest anywhere nearby.
var localPlaces = []place{
	{"Columbus", "OH", []string{"43201", "43202", "43204", "43206", "43209", "43211", "43214", "43215", "43219", "43221", "43224", "43229", "43232", "43235"}, []string{"614", "380"}},
	{"Westerville", "OH", []string{"43081", "43082"}, []string{"614", "380"}},
	{"Dublin", "OH", []string{"43016", "43017"}, []string{"614", "380"}},
	{"Worthington", "OH", []string{"43085"}, []string{"614"}},
	{"Hilliard", "OH", []string{"43026"}, []string{"614"}},
	{"Grove City", "OH", []string{"43123"}, []string{"614"}},
	{"Gahanna", "OH", []string{"43230"}, []string{"614"}},
	{"Reynoldsburg", "OH", []string{"43068"}, []string{"614"}},
	{"Pickerington", "OH", []string{"43147"}, []string{"614"}},
	{"Delaware", "OH", []string{"43015"}, []string{"740"}},
	{"Newark", "OH", []string{"43055"}, []string{"740"}},
	{"Lancaster", "OH", []string{"43130"}, []string{"740"}},
	{"Marysville", "OH", []string{"43040"}, []string{"937"}},
	{"Powell", "OH", []string{"43065"}, []string{"614"}},
}

var farPlaces = []place{
	{"Chicago", "IL", []string{"60614", "60622", "60647", "60657"}, []string{"312", "773"}},
	{"Pittsburgh", "PA", []string{"15213", "15217", "15232"}, []string{"412"}},
	{"Indianapolis", "IN", []string{"46201", "46220", "46240"}, []string{"317"}},
	{"Louisville", "KY", []string{"40204", "40205", "40207"}, []string{"502"}},
	{"Detroit", "MI", []string{"48201", "48207", "48226"}, []string{"313"}},
	{"Charleston", "WV", []string{"25301", "25311"}, []string{"304"}},
	{"Cincinnati", "OH", []string{"45202", "45208", "45220"}, []string{"513"}},
	{"Cleveland", "OH", []string{"44102", "44113", "44120"}, []string{"216"}},
}

var streetNames = []string{"Maple", "Oak", "High", "Cedar", "Elm", "Walnut", "Sycamore", "Chestnut", "Willow", "Hickory", "Broad", "Main", "Park", "Lake", "Hill", "River", "Meadow", "Orchard", "Spring", "Washington", "Lincoln", "Jefferson", "Franklin", "Madison", "Summit", "Kenny", "Olentangy", "Sawmill", "Hamilton", "Indianola", "Cleveland", "Bethel", "Schrock", "Morse", "Livingston"}

var streetSuffixes = []string{"St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Cir", "Pike"}

// asciiFold maps the accented letters used in the name lists to ASCII, for email addresses.
var asciiFold = func() map[rune]string {
	m := map[rune]string{}
	for _, p := range [][2]string{
		{"a", "àáâãäåāăạảấầẩẫậắằẳẵặ"}, {"e", "èéêëēẹẻẽếềểễệ"}, {"i", "ìíîïīịỉĩ"},
		{"o", "òóôõöøōọỏốồổỗộơớờởỡợ"}, {"u", "ùúûüūụủũưứừửữự"}, {"y", "ýÿỳỵỷỹ"},
		{"n", "ñ"}, {"c", "ç"}, {"d", "đ"},
	} {
		for _, r := range p[1] {
			m[r] = p[0]
		}
	}
	return m
}()

// emailPart lower-cases s and reduces it to ASCII letters, digits and dots.
func emailPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		case asciiFold[r] != "":
			b.WriteString(asciiFold[r])
		}
	}
	return b.String()
}
